#include "CSpace.h"

#include <errno.h>

ffi_type *cs_ffi_type_void(void) { return &ffi_type_void; }
ffi_type *cs_ffi_type_uint8(void) { return &ffi_type_uint8; }
ffi_type *cs_ffi_type_sint8(void) { return &ffi_type_sint8; }
ffi_type *cs_ffi_type_uint16(void) { return &ffi_type_uint16; }
ffi_type *cs_ffi_type_sint16(void) { return &ffi_type_sint16; }
ffi_type *cs_ffi_type_uint32(void) { return &ffi_type_uint32; }
ffi_type *cs_ffi_type_sint32(void) { return &ffi_type_sint32; }
ffi_type *cs_ffi_type_uint64(void) { return &ffi_type_uint64; }
ffi_type *cs_ffi_type_sint64(void) { return &ffi_type_sint64; }
ffi_type *cs_ffi_type_float(void) { return &ffi_type_float; }
ffi_type *cs_ffi_type_double(void) { return &ffi_type_double; }
ffi_type *cs_ffi_type_pointer(void) { return &ffi_type_pointer; }

ffi_abi cs_ffi_default_abi(void) { return FFI_DEFAULT_ABI; }

ffi_status cs_ffi_prep_cif(ffi_cif *cif, unsigned int nargs, ffi_type *rtype, ffi_type **atypes) {
    return ffi_prep_cif(cif, FFI_DEFAULT_ABI, nargs, rtype, atypes);
}

ffi_status cs_ffi_prep_cif_var(ffi_cif *cif, unsigned int nfixed, unsigned int ntotal,
                               ffi_type *rtype, ffi_type **atypes) {
    return ffi_prep_cif_var(cif, FFI_DEFAULT_ABI, nfixed, ntotal, rtype, atypes);
}

void cs_ffi_call(ffi_cif *cif, void *fn, void *rvalue, void **avalues) {
    ffi_call(cif, (void (*)(void))fn, rvalue, avalues);
}

void cs_ffi_call_errno(ffi_cif *cif, void *fn, void *rvalue, void **avalues, int *error) {
    errno = 0;
    ffi_call(cif, (void (*)(void))fn, rvalue, avalues);
    *error = errno;
}

ffi_status cs_ffi_struct_offsets(ffi_type *type, size_t *offsets) {
    return ffi_get_struct_offsets(FFI_DEFAULT_ABI, type, offsets);
}

unsigned short cs_ffi_type_struct_tag(void) { return FFI_TYPE_STRUCT; }

void *cs_closure_new(ffi_cif *cif, cs_closure_fn fn, void *user_data, void **code) {
    ffi_closure *closure = ffi_closure_alloc(sizeof(ffi_closure), code);
    if (closure == NULL) return NULL;
    if (ffi_prep_closure_loc(closure, cif, fn, user_data, *code) != FFI_OK) {
        ffi_closure_free(closure);
        return NULL;
    }
    return closure;
}

void cs_closure_free(void *closure) { ffi_closure_free(closure); }

void cs_closure_set_user_data(void *closure, void *user_data) {
    ((ffi_closure *)closure)->user_data = user_data;
}
