#include "profile.h"
/* placeholder */
