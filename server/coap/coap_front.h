/* coap_front.h: the CoAP(S) front, rows "coap" and "coaps" of the fronts
 * table (server/fronts.c). See coap_front.c. */
#ifndef DFOTAD_COAP_FRONT_H
#define DFOTAD_COAP_FRONT_H

#include "../../net/front.h"
#include "../../util/proto.h"

extern const struct front_row coap_front_row;
extern const struct front_row coaps_front_row;

#endif
