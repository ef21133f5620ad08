// CSpace: the few libffi pieces Swift 6 cannot use directly.
//
// Why each shim exists:
// - The `ffi_type_*` globals are mutable C globals; Swift 6 strict concurrency rejects taking
//   their address (`&ffi_type_sint32`). These accessors return the pointers from C instead.
// - `FFI_DEFAULT_ABI` is a per-target macro/enum; one accessor keeps Swift code target-neutral.
// - `ffi_prep_cif_var` is wrapped so variadic calls are prepared through one checked entry point.
// - `cs_ffi_call_errno` clears and reads `errno` in C, right around the call: between Swift code and
//   the thread-local `errno` the runtime may run code (allocation, retain/release) that changes it.
// - `cs_ffi_struct_offsets` exposes `ffi_get_struct_offsets`, which also completes a struct type's
//   size and alignment, so struct layouts come from libffi's own ABI rules rather than a copy of them.
// - `cs_closure_new` / `cs_closure_free` wrap `ffi_closure_alloc` + `ffi_prep_closure_loc`: the size
//   of `ffi_closure` (a trampoline union Swift imports poorly) stays on the C side, and the two-step
//   allocate-then-prepare, with its cleanup on failure, is one call.
#ifndef CSPACE_H
#define CSPACE_H

#include <ffi.h>
#include <stddef.h>

ffi_type *cs_ffi_type_void(void);
ffi_type *cs_ffi_type_uint8(void);
ffi_type *cs_ffi_type_sint8(void);
ffi_type *cs_ffi_type_uint16(void);
ffi_type *cs_ffi_type_sint16(void);
ffi_type *cs_ffi_type_uint32(void);
ffi_type *cs_ffi_type_sint32(void);
ffi_type *cs_ffi_type_uint64(void);
ffi_type *cs_ffi_type_sint64(void);
ffi_type *cs_ffi_type_float(void);
ffi_type *cs_ffi_type_double(void);
ffi_type *cs_ffi_type_pointer(void);

/// The platform's default calling convention.
ffi_abi cs_ffi_default_abi(void);

/// `ffi_prep_cif` with the default ABI. Returns FFI_OK (0) on success.
ffi_status cs_ffi_prep_cif(ffi_cif *cif, unsigned int nargs, ffi_type *rtype, ffi_type **atypes);

/// `ffi_prep_cif_var` with the default ABI, for variadic functions.
ffi_status cs_ffi_prep_cif_var(ffi_cif *cif, unsigned int nfixed, unsigned int ntotal,
                               ffi_type *rtype, ffi_type **atypes);

/// `ffi_call`: calls `fn` with the prepared `cif`; `rvalue` must hold at least `sizeof(ffi_arg)` bytes.
void cs_ffi_call(ffi_cif *cif, void *fn, void *rvalue, void **avalues);

/// `ffi_call` with `errno` set to 0 before the call and stored in `*error` right after it.
void cs_ffi_call_errno(ffi_cif *cif, void *fn, void *rvalue, void **avalues, int *error);

/// Lays out a struct type (`FFI_TYPE_STRUCT` with a NULL-terminated `elements` array): fills its
/// `size` and `alignment` and writes each element's byte offset to `offsets` (may be NULL).
/// Returns FFI_OK (0) on success.
ffi_status cs_ffi_struct_offsets(ffi_type *type, size_t *offsets);

/// `FFI_TYPE_STRUCT`, for building struct types from Swift.
unsigned short cs_ffi_type_struct_tag(void);

/// The function a closure runs: libffi passes the cif, the return slot, the argument pointers and
/// the closure's user data.
typedef void (*cs_closure_fn)(ffi_cif *cif, void *ret, void **args, void *user_data);

/// Makes a closure: a real C function pointer (`*code`) with the signature `cif` that runs `fn` with
/// `user_data`. `cif` must outlive the closure. Returns the closure to free, or NULL on failure.
void *cs_closure_new(ffi_cif *cif, cs_closure_fn fn, void *user_data, void **code);

/// Points a closure at new user data (its owner, once that exists).
void cs_closure_set_user_data(void *closure, void *user_data);

/// Frees a closure made by `cs_closure_new`; its code pointer must not be called afterwards.
void cs_closure_free(void *closure);

#endif
