/*
 * <asm/cachectl.h> for LMDB on MIPS with a libc-only sysroot.
 *
 * mdb.c includes this kernel header on MIPS for the cacheflush() cache
 * selectors. Debian's musl-dev:mipsel ships no kernel headers, and musl's
 * <sys/cachectl.h> cannot stand in for it: its cacheflush(void *, int, int)
 * prototype conflicts with mdb.c's own extern declaration. The kernel's
 * header is only these three values (arch/mips/include/uapi/asm/cachectl.h),
 * so ours is too. It is found with -idirafter, for LMDB only: a toolchain
 * with kernel headers (an OpenWrt SDK) uses its own.
 */
#ifndef TE_COMPAT_ASM_CACHECTL_H
#define TE_COMPAT_ASM_CACHECTL_H

#define ICACHE	(1 << 0)	/* flush the instruction cache */
#define DCACHE	(1 << 1)	/* write back and flush the data cache */
#define BCACHE	(ICACHE | DCACHE)	/* both */

#endif
