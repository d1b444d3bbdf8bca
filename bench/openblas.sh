# Sourced by the comparison scripts: lets the OpenBLAS anchor pick its own
# kernels, then makes sure what it picked is the fastest this build has.
#
# The workplace may pin OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old builds;
# a benchmark must not inherit such pins, so both are unset first and the
# kernel OpenBLAS chooses by itself is reported. Debian 12's OpenBLAS 0.3.21
# predates Sapphire Rapids and Zen 4/5: on them it falls back to its
# Prescott (SSE3) kernels, about five times slower than its AVX-512 ones.
# Only in that case is SkylakeX (the AVX-512 sgemm kernel, the same one its
# Cooperlake and SapphireRapids targets use in later releases) pinned, and
# the script says so.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
openblas_core() {
	OPENBLAS_VERBOSE=2 OPENBLAS_NUM_THREADS=1 "${PY:-/usr/bin/python3}" -c \
		'import numpy; numpy.ones((2, 2), numpy.float32) @ numpy.ones((2, 2), numpy.float32)' 2>&1 |
		awk '/Core:/ {print $2}'
}
OPENBLAS_AUTO=$(openblas_core)
OPENBLAS_NOTE="OpenBLAS picked ${OPENBLAS_AUTO:-unknown} by itself"
case "$OPENBLAS_AUTO" in
Prescott | Core2 | Nehalem | Sandybridge | Haswell | Zen | "")
	if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
		export OPENBLAS_CORETYPE=SkylakeX
		OPENBLAS_NOTE="$OPENBLAS_NOTE, a pre-AVX-512 kernel on an AVX-512 CPU: pinned SkylakeX, its fastest"
	fi
	;;
esac
