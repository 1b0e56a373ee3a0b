/* prumux.h -- the public interface of libprumux, in one include.  */
#ifndef PRUMUX_H
#define PRUMUX_H
#include "error.h"
#include "stream.h"
#endif
