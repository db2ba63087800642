#ifndef CAVRO_SHIM_H
#define CAVRO_SHIM_H
#include <avro.h>
/* avro_value_* are function-like macros, which Swift does not import: wrap the ones we use. */
static inline int cavro_value_get_by_name(avro_value_t *v, const char *name, avro_value_t *child, size_t *index) {
    return avro_value_get_by_name(v, name, child, index);
}
static inline int cavro_value_get_by_index(const avro_value_t *v, size_t i, avro_value_t *child, const char **name) {
    return avro_value_get_by_index(v, i, child, name);
}
static inline avro_type_t cavro_value_get_type(const avro_value_t *v) { return avro_value_get_type(v); }
static inline avro_schema_t cavro_value_get_schema(const avro_value_t *v) { return avro_value_get_schema(v); }
static inline int cavro_value_get_size(const avro_value_t *v, size_t *size) { return avro_value_get_size(v, size); }
static inline int cavro_value_get_boolean(const avro_value_t *v, int *out) { return avro_value_get_boolean(v, out); }
static inline int cavro_value_get_int(const avro_value_t *v, int32_t *out) { return avro_value_get_int(v, out); }
static inline int cavro_value_get_long(const avro_value_t *v, int64_t *out) { return avro_value_get_long(v, out); }
static inline int cavro_value_get_float(const avro_value_t *v, float *out) { return avro_value_get_float(v, out); }
static inline int cavro_value_get_double(const avro_value_t *v, double *out) { return avro_value_get_double(v, out); }
static inline int cavro_value_get_bytes(const avro_value_t *v, const void **buf, size_t *size) {
    return avro_value_get_bytes(v, buf, size);
}
static inline int cavro_value_get_string(const avro_value_t *v, const char **s, size_t *size) {
    return avro_value_get_string(v, s, size);
}
static inline int cavro_value_get_enum(const avro_value_t *v, int *out) { return avro_value_get_enum(v, out); }
static inline int cavro_value_get_current_branch(const avro_value_t *v, avro_value_t *branch) {
    return avro_value_get_current_branch(v, branch);
}
static inline int cavro_value_get_discriminant(const avro_value_t *v, int *out) { return avro_value_get_discriminant(v, out); }
static inline int cavro_value_set_null(avro_value_t *v) { return avro_value_set_null(v); }
static inline int cavro_value_set_boolean(avro_value_t *v, int x) { return avro_value_set_boolean(v, x); }
static inline int cavro_value_set_int(avro_value_t *v, int32_t x) { return avro_value_set_int(v, x); }
static inline int cavro_value_set_long(avro_value_t *v, int64_t x) { return avro_value_set_long(v, x); }
static inline int cavro_value_set_float(avro_value_t *v, float x) { return avro_value_set_float(v, x); }
static inline int cavro_value_set_double(avro_value_t *v, double x) { return avro_value_set_double(v, x); }
static inline int cavro_value_set_bytes(avro_value_t *v, void *buf, size_t size) { return avro_value_set_bytes(v, buf, size); }
/* NUL-terminated; avro copies the bytes. */
static inline int cavro_value_set_string(avro_value_t *v, const char *s) { return avro_value_set_string(v, s); }
static inline int cavro_value_set_enum(avro_value_t *v, int x) { return avro_value_set_enum(v, x); }
static inline int cavro_value_set_branch(avro_value_t *v, int discriminant, avro_value_t *branch) {
    return avro_value_set_branch(v, discriminant, branch);
}
static inline int cavro_value_append(avro_value_t *v, avro_value_t *child, size_t *index) { return avro_value_append(v, child, index); }
static inline int cavro_value_add(avro_value_t *v, const char *key, avro_value_t *child, size_t *index, int *is_new) {
    return avro_value_add(v, key, child, index, is_new);
}
static inline int cavro_value_reset(avro_value_t *v) { return avro_value_reset(v); }
static inline void cavro_value_iface_decref(avro_value_iface_t *iface) { avro_value_iface_decref(iface); }
#endif
