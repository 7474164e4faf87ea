/* The MBR sector struct lives in lib/mbr.h (pmoves-firstboot grows MBR disks too). */
#include "../lib/mbr.h"
