#!/usr/bin/env bash
# benchmarks/scale.sh: the scale curves of README.md's Performance
# section. It runs `stream bench` (cmd/stream) over four sweeps — topic
# partitions, producers, consumers in one group, value size — writes each
# run's JSON report to scale/results.json, then draws scale/scale.svg and
# prints the Markdown tables with scaleplot. From anywhere:
#
#	benchmarks/scale.sh                # about 3-5 minutes on a shared 2-core machine
#	PLOT_ONLY=1 benchmarks/scale.sh    # redraw from the kept results
#
# The sweeps are short for a shared 2-core machine: one run a point,
# partitions up to 1,000 (10,000 takes minutes to create and close
# here), -sync never (the engine's cost, not the disk's), 100,000
# records of 100 B (fewer for large values: about 50 MB a run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v go >/dev/null 2>&1; then
	export PATH="/usr/local/go/bin:$PATH"
fi
mkdir -p scale
out=scale/results.json

if [ -z "${PLOT_ONLY:-}" ]; then
	bin="$(mktemp -d -t stream-scale.XXXXXX)"
	trap 'rm -rf "$bin"' EXIT
	(cd .. && go build -o "$bin/stream" ./cmd/stream)
	: >"$out"
	run() { # sweep x flags...
		local sweep=$1 x=$2
		shift 2
		echo "$sweep=$x: stream bench -sync never $*" >&2
		printf '{"sweep": "%s", "x": %s, "report": ' "$sweep" "$x" >>"$out"
		"$bin/stream" bench -sync never -json "$@" 2>/dev/null >>"$out"
		printf '}\n' >>"$out"
	}
	for n in 1 10 100 1000; do
		run partitions "$n" -records 100000 -partitions "$n" -producers 1 -consumers 4
	done
	for n in 1 4 16 64; do
		run producers "$n" -records 100000 -partitions 64 -producers "$n" -consumers 4
	done
	for n in 1 4 16 64; do
		run consumers "$n" -records 100000 -partitions 64 -producers 1 -consumers "$n"
	done
	for size in 10 100 1000 10000 100000 1048576; do
		records=$((50000000 / size))
		records=$((records > 100000 ? 100000 : records < 200 ? 200 : records))
		run size "$size" -records "$records" -size "$size" -partitions 4 -producers 1 -consumers 4
	done
fi
go run ./scaleplot -in "$out" -svg scale/scale.svg
