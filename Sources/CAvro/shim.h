#ifndef CAVRO_SHIM_H
#define CAVRO_SHIM_H
#include <avro.h>
/* avro_value_* are function-like macros, which Swift does not import: wrap the ones we use. */
static inline int cavro_value_get_by_name(avro_value_t *v, const char *name, avro_value_t *child, size_t *index) {
    return avro_value_get_by_name(v, name, child, index);
}
static inline int cavro_value_set_long(avro_value_t *v, int64_t x) { return avro_value_set_long(v, x); }
static inline int cavro_value_get_long(const avro_value_t *v, int64_t *out) { return avro_value_get_long(v, out); }
static inline int cavro_value_set_string(avro_value_t *v, const char *s) { return avro_value_set_string(v, s); }
static inline int cavro_value_get_string(const avro_value_t *v, const char **s, size_t *size) {
    return avro_value_get_string(v, s, size);
}
static inline int cavro_value_reset(avro_value_t *v) { return avro_value_reset(v); }
static inline void cavro_value_iface_decref(avro_value_iface_t *iface) { avro_value_iface_decref(iface); }
#endif
