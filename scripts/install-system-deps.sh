#!/bin/sh
# Installs the stock tools Airlock's tests and benchmark compare against
# (age, for interoperability; openssl, for the reference pipeline) and the
# PKCS#11 software token the HSM tests and the demo use (softhsm2, with opensc's
# pkcs11-tool to make keys on it), and libfaketime (package faketime: the tests
# run the real spoke service and node agents with the system clock moved weeks
# ahead) and strace (the benchmark counts the bytes an import reads) from the
# distribution's packages. Needs root and apt-get; otherwise says what to do.
set -e
missing=""
command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1 || missing="$missing age"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v softhsm2-util >/dev/null 2>&1 || missing="$missing softhsm2"
command -v pkcs11-tool >/dev/null 2>&1 || missing="$missing opensc"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v strace >/dev/null 2>&1 || missing="$missing strace"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "Please install:$missing (e.g. 'sudo apt-get install$missing')" >&2
    exit 1
fi
