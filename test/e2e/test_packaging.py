"""The OpenWrt package and the Yocto recipe (scripts/openwrt, scripts/yocto).

Neither an OpenWrt SDK nor BitBake with its layers is available here, so:
- the OpenWrt package Makefile runs for real under a stand-in for OpenWrt's
  rules.mk/package.mk (test/packaging/openwrt): its Build/Prepare,
  Build/Compile and Package/tinyedge/install recipes, with Debian's mipsel
  cross gcc + musl in place of the SDK's toolchain; the binary is then run
  under qemu-mipsel-static;
- both files are checked against the pins in third_party/*.mk and against
  the repository's files, so a dependency bump or a moved file fails here.
"""
import os
import re
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENWRT_MK = os.path.join(ROOT, "scripts", "openwrt", "Makefile")
RECIPE = os.path.join(ROOT, "scripts", "yocto", "tinyedge_git.bb")


def pins():
    """{name: (source package, tarball, sha256)} from third_party/*.mk."""
    out = {}
    for f in sorted(os.listdir(os.path.join(ROOT, "third_party"))):
        if not f.endswith(".mk"):
            continue
        text = open(os.path.join(ROOT, "third_party", f)).read()
        field = lambda k: re.search(rf"^[A-Z]+_{k}\s*:=\s*(\S+)", text, re.M).group(1)
        out[f[:-3]] = (field("SOURCE"), field("TARBALL"), field("SHA256"))
    assert set(out) == {"bearssl", "jsmn", "lmdb"}
    return out


def pool_url(source, tarball):
    return f"https://deb.debian.org/debian/pool/main/{source[0]}/{source}/{tarball}"


def test_openwrt_package_downloads_the_pinned_tarballs():
    text = open(OPENWRT_MK).read()
    pool = re.search(r"^DEBIAN_POOL:=(\S+)", text, re.M).group(1)
    for name, (source, tarball, sha) in pins().items():
        block = re.search(rf"define Download/{name}\n(.*?)endef", text, re.S)
        assert block, f"no Download/{name}"
        body = block.group(1).replace("$(DEBIAN_POOL)", pool)
        url = re.search(r"URL:=(\S+)", body).group(1)
        assert re.search(r"FILE:=(\S+)", body).group(1) == tarball
        assert re.search(r"HASH:=(\S+)", body).group(1) == sha
        assert f"{url}/{tarball}" == pool_url(source, tarball)
        assert tarball in re.search(r"define Build/Prepare\n(.*?)endef", text, re.S).group(1)


def test_yocto_recipe_fetches_the_pinned_tarballs_and_installs_existing_files():
    text = open(RECIPE).read()
    pool = re.search(r'^DEBIAN_POOL = "(\S+)"', text, re.M).group(1)
    for name, (source, tarball, sha) in pins().items():
        m = re.search(rf"\$\{{DEBIAN_POOL\}}(\S+);name={name};unpack=0", text)
        assert m, f"{name} not in SRC_URI"
        assert pool + m.group(1) == pool_url(source, tarball)
        assert f'SRC_URI[{name}.sha256sum] = "{sha}"' in text
        assert f"${{WORKDIR}}/{tarball}" in text, f"{tarball} not copied to third_party/dl"
    installs = re.findall(r"install -m (\d+) \$\{S\}/(\S+) \$\{D\}(\S+)", text)
    assert len(installs) >= 6
    for mode, src, dst in installs:
        assert os.path.exists(os.path.join(ROOT, src)) or src.startswith("build/"), src
    modes = {src: mode for mode, src, _ in installs}
    assert modes["rootfs/etc/tinyedge/config.json"] == "0600"
    assert modes["build/yocto/tinyedge.debug"] == "0755"
    assert modes["rootfs/etc/init.d/tinyedge"] == "0755"
    conffiles = re.search(r'CONFFILES:\$\{PN\} = "(.*?)"', text, re.S).group(1).split()
    installed = {dst for _, _, dst in installs}
    for c in (c.replace("\\", "") for c in conffiles):
        if c:
            assert c in installed, f"CONFFILES names {c}, which do_install does not install"


@pytest.fixture(scope="module")
def openwrt_build(tmp_path_factory):
    if not shutil.which("mipsel-linux-gnu-gcc") or not shutil.which("qemu-mipsel-static"):
        pytest.fail("the mipsel cross compiler and qemu-user-static are test prerequisites")
    out = tmp_path_factory.mktemp("openwrt")
    (out / "dl").mkdir()
    for name, (_, tarball, _) in pins().items():
        shutil.copy(os.path.join(ROOT, "third_party", "dl", tarball), out / "dl")
    r = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "scripts", "openwrt"),
                        f"TOPDIR={ROOT}/test/packaging/openwrt", f"HARNESS_OUT={out}",
                        "compile", "install"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def test_openwrt_package_builds_a_static_mipsel_binary_that_runs(openwrt_build):
    binary = openwrt_build / "ipkg" / "usr" / "bin" / "tinyedge"
    info = subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout
    assert "MIPS" in info and "statically linked" in info and "LSB" in info, info
    r = subprocess.run(["qemu-mipsel-static", str(binary), "version"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "commit: openwrt-0.1.0-1" in r.stdout and "mipsel" in r.stdout, r.stdout
    downloads = (openwrt_build / "downloads.txt").read_text().split("\n")
    for name, (source, tarball, sha) in pins().items():
        assert f"{pool_url(source, tarball)} {sha}" in downloads


def test_openwrt_package_installs_the_procd_service_and_its_config(openwrt_build):
    root = openwrt_build / "ipkg"
    want = {"usr/bin/tinyedge": 0o755, "etc/init.d/tinyedge": 0o755,
            "etc/config/tinyedge": 0o600, "etc/tinyedge/config.json": 0o600,
            "etc/tinyedge/deployment.json": 0o644}
    got = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if not rel.startswith("CONTROL/"):
                got[rel] = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
    assert got == want
    init = (root / "etc" / "init.d" / "tinyedge").read_text()
    assert init.startswith("#!/bin/sh /etc/rc.common") and "USE_PROCD=1" in init
    assert init == open(os.path.join(ROOT, "rootfs", "etc", "init.d", "tinyedge.procd")).read()
    conffiles = (root / "CONTROL" / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/etc/config/tinyedge", "/etc/tinyedge/config.json",
                                 "/etc/tinyedge/deployment.json"]
    for c in conffiles:
        assert (root / c.lstrip("/")).is_file()


def test_a_glibc_static_build_links_and_runs(tmp_path):
    # Yocto's default libc is glibc: the same Makefile links with it too.
    build = tmp_path / "glibc"
    r = subprocess.run(["make", "-s", "-C", ROOT, "CC=gcc", f"BUILD={build}",
                        f"{build}/tinyedge.debug"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([str(build / "tinyedge.debug"), "version"], capture_output=True, text=True)
    assert r.returncode == 0 and "static, glibc, x86_64" in r.stdout, r.stdout + r.stderr
    info = subprocess.run(["file", str(build / "tinyedge.debug")], capture_output=True, text=True).stdout
    assert "statically linked" in info, info
