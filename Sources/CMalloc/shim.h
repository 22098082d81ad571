// glibc's malloc tuning (mallopt), which Swift's Glibc module leaves out. Nothing to link.
#include <malloc.h>
