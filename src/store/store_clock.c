/* The store clock: a millisecond timeline that survives reboots and ignores
 * wall-clock jumps, so that TTLs mean elapsed time (docs/store.md, "Clock").
 *
 * Within one boot, store time = base + CLOCK_BOOTTIME, base fixed at open.
 * Each commit (and an "alive" tick when idle) persists where the timeline
 * is, with the boot id and the wall clock. A later open in the same boot
 * keeps the base; an open in a new boot resumes from the last alive point
 * (st_clock_resume). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void st_sys_clock(void *ctx, uint64_t *wall_ms, uint64_t *boot_ms)
{
	*wall_ms = clock_ms(CLOCK_REALTIME);
	*boot_ms = clock_ms(CLOCK_BOOTTIME);
}

uint64_t st_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* The kernel's random id of this boot (36 characters). Without it every
 * open counts as a new boot, which only makes messages age faster. */
int st_read_boot_id(char *out, size_t cap)
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	out[0] = '\0';
	if (fd < 0)
		return -errno;
	n = read(fd, out, cap - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	return 0;
}

/* Store time now, given the clock record persisted by the last run.
 *
 *  - fresh store: the boot clock (any origin works; it only has to move).
 *  - same boot: base + boot clock, as that run had it.
 *  - new boot: the timeline resumes at the last alive point plus the time
 *    that has passed since, which we only know in one of two ways:
 *      the wall clock, if it looks set now and looked set then: now must be
 *      at or after the build floor and at or after the latest good wall
 *      time ever seen (a clock running backwards is not trusted), and the
 *      alive point's wall time must be at or after the floor;
 *      otherwise at least this boot's uptime (the power-off time is lost).
 *    Either way it is at least this boot's uptime.
 * So an RTC-less device that boots in 1970 neither expires everything (no
 * 50-year jump) nor keeps messages forever: they age by every second the
 * device ran, in this boot and the ones before. */
uint64_t st_clock_resume(const struct st_clockrec *prev, const char *boot_id,
			 uint64_t wall_ms, uint64_t boot_ms, uint64_t floor_ms)
{
	uint64_t elapsed = boot_ms, t;

	if (!prev)
		return boot_ms;
	if (boot_id[0] && strcmp(prev->boot_id, boot_id) == 0) {
		t = prev->base_ms + boot_ms;
		return t > prev->alive_ms ? t : prev->alive_ms;
	}
	if (wall_ms >= floor_ms && wall_ms >= prev->wall_good_ms &&
	    prev->alive_wall_ms >= floor_ms && wall_ms - prev->alive_wall_ms > elapsed)
		elapsed = wall_ms - prev->alive_wall_ms;
	return prev->alive_ms + elapsed;
}

uint64_t st_now(const struct te_store *s, uint64_t *wall_ms)
{
	uint64_t wall, boot;

	s->clk.now(s->clk.ctx, &wall, &boot);
	if (wall_ms)
		*wall_ms = wall;
	return s->base_ms + boot;
}

/* Update the clock record to "alive at now" (the writer persists it). */
void st_clock_alive(struct te_store *s, uint64_t now, uint64_t wall)
{
	struct st_clockrec *c = &s->clock;

	memcpy(c->boot_id, s->boot_id, sizeof(c->boot_id));
	c->base_ms = s->base_ms;
	if (now > c->alive_ms)
		c->alive_ms = now;
	c->alive_wall_ms = wall;
	if (wall >= s->wall_floor_ms && wall > c->wall_good_ms)
		c->wall_good_ms = wall;
}
