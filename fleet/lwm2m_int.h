/* lwm2m_int.h: the fleet's LwM2M device fields (lwm2m.c), for the files
 * that create, save, load, show and free devices. f->mu held. */
#ifndef DFOTAD_FLEET_LWM2M_INT_H
#define DFOTAD_FLEET_LWM2M_INT_H

#include <jansson.h>
#include <stdio.h>

struct device;

/* The admin API's lwm2m_endpoint and trigger fields: a complaint or NULL. */
const char *lwm2m_body_error(json_t *b);
/* Applies them (checked before). */
void lwm2m_apply(struct device *d, json_t *b);
/* Into and out of the device's stored document. */
void lwm2m_doc(const struct device *d, json_t *o);
void lwm2m_from_doc(struct device *d, json_t *doc);
/* trigger, lwm2m_endpoint and the registration (lwm2m) on the device's JSON. */
void lwm2m_json(const struct device *d, json_t *o);
void lwm2m_device_free(struct device *d);
/* The rollout's current wave was admitted (a start, a resume, the next
 * wave): its LwM2M-driven members not yet on an end state are put on the
 * wake list, so that the LwM2M server asks the core for their offer at
 * once (or, in queue mode, at their next Update) instead of at their next
 * lwm2m_poll. f->mu held. */
struct rollout;
void lwm2m_wake_wave(struct rollout *r);
/* The LwM2M counters, Prometheus text (metrics.c). */
void lwm2m_metrics(FILE *m);

#endif
