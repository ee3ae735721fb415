// Shim for libhdf5 (Debian libhdf5-dev, serial build). No stable API: used only by
// LAQHDF5's HDF5.swift and the files beside it.
//
// HDF5 spells many constants as macros that Swift cannot import (H5F_ACC_*,
// H5T_NATIVE_*, H5T_VARIABLE, H5P_FILE_ACCESS): each gets a static inline getter with
// the laq_ prefix. Getters for type and class ids also run H5open(), as the macros do.
#include <hdf5/serial/hdf5.h>

static inline unsigned laq_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }

// Switches off libhdf5's printing of its error stack to stderr for the calling thread. A
// thread-safe libhdf5 (Debian's is) keeps this setting per thread, so each thread that calls
// libhdf5 needs it once; laq carries the stack in its own error instead.
static inline void laq_h5_silence_thread(void) {
    static _Thread_local int silenced = 0;
    if (!silenced) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        silenced = 1;
    }
}
static inline hid_t laq_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t laq_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t laq_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t laq_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t laq_h5t_c_s1(void) { return H5T_C_S1; }
static inline size_t laq_h5t_variable(void) { return H5T_VARIABLE; }
static inline unsigned laq_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t laq_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t laq_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t laq_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline unsigned laq_h5f_obj_all(void) { return H5F_OBJ_ALL; }

// A file image read where it lies (read-only, not copied): libhdf5's file-image callbacks hand
// out the caller's buffer instead of copies of it, as H5LTopen_file_image does with
// H5LT_FILE_IMAGE_DONT_COPY (laq names its images itself: see H5File.imageName). Without them
// the property list and the core driver each keep a copy of the image. The buffer must outlive
// the file and stay unchanged; nothing is ever written to it (the file is opened read-only).
static inline void *laq_image_malloc(size_t size, H5FD_file_image_op_t op, void *buffer) {
    (void)size;
    switch (op) {
    case H5FD_FILE_IMAGE_OP_PROPERTY_LIST_SET:
    case H5FD_FILE_IMAGE_OP_PROPERTY_LIST_COPY:
    case H5FD_FILE_IMAGE_OP_PROPERTY_LIST_GET:
    case H5FD_FILE_IMAGE_OP_FILE_OPEN:
        return buffer;
    default:
        return NULL;  // growing the image (a write) is refused
    }
}
static inline void *laq_image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *buffer) {
    (void)size;
    (void)op;
    // Every copy is of the buffer onto itself; any other is refused.
    return dest == buffer && src == buffer ? dest : NULL;
}
static inline void *laq_image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *buffer) {
    (void)ptr;
    (void)size;
    (void)op;
    (void)buffer;
    return NULL;
}
static inline herr_t laq_image_free(void *ptr, H5FD_file_image_op_t op, void *buffer) {
    (void)op;
    return ptr == buffer ? 0 : -1;
}
static inline void *laq_image_udata_copy(void *buffer) { return buffer; }
static inline herr_t laq_image_udata_free(void *buffer) {
    (void)buffer;
    return 0;
}
static inline herr_t laq_h5p_set_file_image_in_place(hid_t fapl, void *buffer, size_t size) {
    H5FD_file_image_callbacks_t callbacks = {laq_image_malloc, laq_image_memcpy, laq_image_realloc, laq_image_free,
                                             laq_image_udata_copy, laq_image_udata_free, buffer};
    if (H5Pset_file_image_callbacks(fapl, &callbacks) < 0) return -1;
    return H5Pset_file_image(fapl, buffer, size);
}
