import Glibc

/// Whether a buffer sized from a file can be allocated.
///
/// A Swift array whose allocation fails aborts the process. Readers ask here first for buffers
/// whose size a file declares, so that a size the process cannot afford (a memory limit,
/// `ulimit -v`) is an error that names the file instead. The probe allocates and frees the
/// block (untouched, so it costs address space, not memory); with overcommit the later
/// allocation of the same size then succeeds in practice.
public enum Memory {
    public static func canAllocate(_ bytes: Int) -> Bool {
        guard bytes >= 0, let block = malloc(max(bytes, 1)) else { return false }
        free(block)
        return true
    }
}
