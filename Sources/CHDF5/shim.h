// Shim for libhdf5 (Debian libhdf5-dev, serial build). No stable API: used only by
// LAQHDF5's HDF5.swift and the files beside it.
//
// HDF5 spells many constants as macros that Swift cannot import (H5F_ACC_*,
// H5T_NATIVE_*, H5T_VARIABLE, H5P_FILE_ACCESS): each gets a static inline getter with
// the laq_ prefix. Getters for type and class ids also run H5open(), as the macros do.
#include <hdf5/serial/hdf5.h>

static inline unsigned laq_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
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
