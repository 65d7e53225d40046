#!/bin/sh
# test/pki.sh DIR — the test PKI for the TLS tests, made with openssl(1).
#
#   ca.pem, ca.key            "tinyedge test CA" (RSA 2048), valid 10 years
#   server.pem, server.key    CN=localhost, SAN DNS:localhost IP:127.0.0.1,
#                             EC P-256 key, signed by the CA
#   server-rsa.pem/.key       the same name with an RSA 2048 key (ECDHE_RSA)
#   expired.pem/.key          CN/SAN localhost, valid 2020-01-01 .. 2021-01-01
#                             (openssl ca -startdate/-enddate)
#   wrongname.pem/.key        CN/SAN wrong.example, signed by the CA
#   ca2.pem, ca2.key          a second CA with the same subject as ca.pem and
#                             another key
#   other.pem/.key            CN/SAN localhost signed by ca2 (same issuer
#                             name, signature does not verify against ca.pem)
#   client.pem, client.key    CN=tinyedge-client, EC P-256, SEC1 key
#                             ("EC PRIVATE KEY"), signed by the CA
#   client-rsa.pem/.key       CN=tinyedge-client-rsa, RSA 2048, PKCS#8 key
#                             ("PRIVATE KEY"), signed by the CA
#   weakca.pem, p224ca.pem    CAs with weak keys (RSA 1024, EC P-224): refused
#                             as trust anchors
#
# Idempotent: a complete DIR (DIR/.complete-2) is left alone; otherwise it is
# regenerated from scratch. Quiet on success; on failure prints openssl's
# output and exits non-zero.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ -f "$dir/.complete-2" ] && exit 0
command -v openssl >/dev/null || { echo "pki.sh: openssl not found" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
rm -rf ./*.pem ./*.key ./*.csr ./*.cnf ./ca-db
log=pki.log
: >"$log"
# shellcheck disable=SC2154 # st is assigned inside the trap's own text
trap 'st=$?; if [ $st -ne 0 ]; then echo "pki.sh: failed in $dir (exit $st):" >&2; cat "$log" >&2; fi' EXIT

ossl() { openssl "$@" >>"$log" 2>&1; }

ec_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
rsa_key() { ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"; }

# ca NAME SUBJECT: a self-signed CA with an RSA key.
ca() {
	rsa_key "$1.key"
	ossl req -new -x509 -key "$1.key" -out "$1.pem" -days 3650 -subj "$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign
}

# ext_file NAME DNS [IP]: server or client extensions for NAME.
ext_file() {
	{
		echo "basicConstraints = critical,CA:FALSE"
		echo "keyUsage = critical,digitalSignature,keyEncipherment"
		if [ "$2" = client ]; then
			echo "extendedKeyUsage = clientAuth"
		else
			echo "extendedKeyUsage = serverAuth"
			echo "subjectAltName = DNS:$2${3:+,IP:$3}"
		fi
	} >"$1.cnf"
}

# leaf NAME KEYTYPE CN USE CA [IP]: a key, a CSR and a certificate signed by CA.
leaf() {
	"${2}_key" "$1.key"
	ossl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3"
	ext_file "$1" "$4" "${6:-}"
	ossl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -CAcreateserial \
		-days 3650 -sha256 -extfile "$1.cnf" -out "$1.pem"
}

ca ca "/O=tinyedge/CN=tinyedge test CA"
ca ca2 "/O=tinyedge/CN=tinyedge test CA"
leaf server ec localhost localhost ca 127.0.0.1
leaf server-rsa rsa localhost localhost ca 127.0.0.1
leaf wrongname ec wrong.example wrong.example ca
leaf other ec localhost localhost ca2 127.0.0.1
leaf client ec tinyedge-client client ca
leaf client-rsa rsa tinyedge-client-rsa client ca
ossl req -new -x509 -newkey rsa:1024 -nodes -keyout weakca.key -out weakca.pem -days 3650 \
	-subj "/CN=tinyedge weak CA" -addext basicConstraints=critical,CA:TRUE
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-224 -out p224ca.key
ossl req -new -x509 -key p224ca.key -out p224ca.pem -days 3650 \
	-subj "/CN=tinyedge P-224 CA" -addext basicConstraints=critical,CA:TRUE
# SEC1 form for the EC client key (genpkey writes PKCS#8).
ossl ec -in client.key -out client.key

# The expired certificate: x509 -req cannot set a start date in OpenSSL 3.0,
# `openssl ca` can.
mkdir -p ca-db
: >ca-db/index.txt
cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
CNF
echo 01 >ca-db/serial
ec_key expired.key
ossl req -new -key expired.key -out expired.csr -subj "/CN=localhost"
ossl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key \
	-startdate 20200101000000Z -enddate 20210101000000Z \
	-in expired.csr -out expired.pem

rm -rf ./*.csr ./*.srl ./*.cnf ca-db
touch .complete-2
rm -f "$log"
