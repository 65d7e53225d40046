SUMMARY = "tinyedge: an IoT edge runtime in one static binary"
DESCRIPTION = "Runs IoT Edge modules as supervised processes in Linux namespaces \
and cgroups, routes their messages through shared-memory rings, keeps an offline \
queue in LMDB and talks to Azure IoT Hub or any MQTT broker over TLS (BearSSL)."
SECTION = "utils"
# No license file is published with tinyedge yet: set the real one here
# before shipping an image (CLOSED keeps bitbake from guessing one).
LICENSE = "CLOSED"

# Put the recipe in a layer of yours (recipes-tinyedge/tinyedge/), then in
# local.conf:
#   TINYEDGE_GIT = "git:///path/to/tinyedge;protocol=file;branch=main"
#   IMAGE_INSTALL:append = " tinyedge"
#   TCLIBC = "musl"      (optional: smaller; glibc works too)
# Written for Yocto 5.0 (scarthgap); not built here (see README,
# "Put it on Yocto").
TINYEDGE_GIT ??= "git://${TOPDIR}/../tinyedge;protocol=file;branch=main"

# The three pinned dependencies, with the sha256 of third_party/*.mk, from
# Debian's archive; they are copied to third_party/dl/ where our
# scripts/deps.sh only verifies and unpacks them.
DEBIAN_POOL = "https://deb.debian.org/debian/pool/main"
SRC_URI = "${TINYEDGE_GIT} \
           ${DEBIAN_POOL}/l/lmdb/lmdb_0.9.24.orig.tar.gz;name=lmdb;unpack=0 \
           ${DEBIAN_POOL}/b/bearssl/bearssl_0.6+dfsg.1.orig.tar.xz;name=bearssl;unpack=0 \
           ${DEBIAN_POOL}/j/jsmn/jsmn_1.1.0.orig.tar.gz;name=jsmn;unpack=0 \
"
SRC_URI[lmdb.sha256sum] = "8e7200fdc9bb09b0cfad1d4eee8b20d539e43fe05c7ef9406247d64659c4a480"
SRC_URI[bearssl.sha256sum] = "102a625bd8f6155260867a50c508df8d8c3f796985dd744df1a68e5cd1a79004"
SRC_URI[jsmn.sha256sum] = "5f0913a10657fe7ec8d5794ccf00a01000e3e1f2f1e1f143c34a0f7b47edcb38"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

inherit update-rc.d systemd

INITSCRIPT_NAME = "tinyedge"
INITSCRIPT_PARAMS = "defaults 95 10"
SYSTEMD_SERVICE:${PN} = "tinyedge.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_configure() {
	mkdir -p ${S}/third_party/dl
	cp ${WORKDIR}/lmdb_0.9.24.orig.tar.gz ${WORKDIR}/bearssl_0.6+dfsg.1.orig.tar.xz \
		${WORKDIR}/jsmn_1.1.0.orig.tar.gz ${S}/third_party/dl/
}

# The target's CC (glibc or musl); CFLAGS and LDFLAGS come from the
# environment. The static binary is built unstripped (tinyedge.debug):
# the build system strips it and keeps the symbols in tinyedge-dbg.
do_compile() {
	oe_runmake -C ${S} BUILD=build/yocto CC="${CC}" CROSS_COMPILE="${TARGET_PREFIX}" \
		AR="${AR}" TP_CFLAGS="${CFLAGS}" build/yocto/tinyedge.debug
}

do_install() {
	install -d ${D}${bindir} ${D}${sysconfdir}/tinyedge
	install -m 0755 ${S}/build/yocto/tinyedge.debug ${D}${bindir}/tinyedge
	install -m 0600 ${S}/rootfs/etc/tinyedge/config.json ${D}${sysconfdir}/tinyedge/config.json
	install -m 0644 ${S}/rootfs/etc/tinyedge/deployment.json ${D}${sysconfdir}/tinyedge/deployment.json
	if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
		install -d ${D}${sysconfdir}/init.d ${D}${sysconfdir}/default
		install -m 0755 ${S}/rootfs/etc/init.d/tinyedge ${D}${sysconfdir}/init.d/tinyedge
		install -m 0644 ${S}/rootfs/etc/default/tinyedge ${D}${sysconfdir}/default/tinyedge
	fi
	if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
		install -d ${D}${systemd_system_unitdir}
		install -m 0644 ${S}/rootfs/lib/systemd/system/tinyedge.service ${D}${systemd_system_unitdir}/
	fi
}

CONFFILES:${PN} = "${sysconfdir}/tinyedge/config.json ${sysconfdir}/tinyedge/deployment.json \
                   ${sysconfdir}/default/tinyedge"
