#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
#include <stdint.h>
/* Number of allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign)
   made by the whole process since start. Linking this target interposes those functions. */
uint64_t tributary_malloc_count(void);
#endif
