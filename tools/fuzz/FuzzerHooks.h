// libFuzzer's entry points that the harness calls (imported with -import-objc-header).
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's own mutators (with the -dict entries), for use inside a custom mutator.
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
