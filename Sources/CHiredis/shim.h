/* hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM drops with a warning; it is a no-op on 64-bit Linux. */
#include <hiredis/hiredis.h>
