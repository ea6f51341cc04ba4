#!/usr/bin/env bash
# benchmarks/run.sh: run the comparison of stream with its peers and print
# the tables of README.md. From anywhere:
#
#	benchmarks/run.sh                   # every workload, 3 runs each: about 3 minutes on 2 cores
#	COUNT=6 benchmarks/run.sh           # more runs, tighter figures
#	BENCH=Read benchmarks/run.sh        # one workload (a -bench regexp)
#	BENCHTIME=100ms benchmarks/run.sh   # a quick look (go test -benchtime)
#	OUT=new.txt benchmarks/run.sh       # keep the raw results (for benchstat old.txt new.txt)
#
# It prints benchstat's summary when benchstat is on PATH (go install
# golang.org/x/perf/cmd/benchstat@latest), then one Markdown table per
# workload: the median of the runs for each engine, and its time per
# record divided by stream's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v go >/dev/null 2>&1; then
	export PATH="/usr/local/go/bin:$PATH"
fi

count="${COUNT:-3}"
bench="${BENCH:-.}"
benchtime="${BENCHTIME:-1s}"
out="${OUT:-$(mktemp -t stream-bench.XXXXXX)}"

echo "go test -run '^\$' -bench '$bench' -benchtime $benchtime -benchmem -count $count  (raw results: $out)"
go test -run '^$' -bench "$bench" -benchtime "$benchtime" -benchmem -count "$count" -timeout 60m . | tee "$out"

if command -v benchstat >/dev/null 2>&1; then
	printf '\n## benchstat\n\n'
	benchstat "$out"
else
	printf '\n(benchstat not found: go install golang.org/x/perf/cmd/benchstat@latest)\n'
fi

printf '\n## Tables (median of %s runs; %s, %s CPUs, %s)\n' \
	"$count" "$(go version | awk '{print $3}')" "$(nproc)" "$(date -u +%Y-%m-%d)"

# One table per workload (the benchmark name without its last element),
# one row per engine (the last element), in the order they ran.
awk '
function mid(arr, name,    n, i, j, t, a) {
	n = cnt[name]
	for (i = 1; i <= n; i++) a[i] = arr[name, i]
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function num(x) {
	if (x == 0) return "0"
	if (x < 0.01) return sprintf("%.3f", x)
	if (x >= 100) return sprintf("%.0f", x)
	if (x >= 10) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
/^cpu:/ { sub(/^cpu: */, ""); cpu = $0 }
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	if (!(name in cnt)) { order[++names] = name; cnt[name] = 0 }
	k = ++cnt[name]
	for (i = 3; i < NF; i += 2) {
		if ($(i + 1) == "ns/record") ns[name, k] = $i
		if ($(i + 1) == "MB/s") mbs[name, k] = $i
		if ($(i + 1) == "B/record") bop[name, k] = $i
		if ($(i + 1) == "allocs/record") aop[name, k] = $i
	}
}
END {
	if (cpu != "") printf "cpu: %s\n", cpu
	for (i = 1; i <= names; i++) {
		name = order[i]
		group = name; sub(/\/[^\/]*$/, "", group)
		if (group != last) {
			base = ""
			if ((group "/stream") in cnt) base = mid(ns, group "/stream")
			printf "\n### %s\n\n", group
			print "| engine | ns/record | MB/s | B/record | allocs/record | time ÷ stream |"
			print "|---|--:|--:|--:|--:|--:|"
			last = group
		}
		engine = name; sub(/^.*\//, "", engine)
		t = mid(ns, name)
		ratio = base == "" ? "" : sprintf("%.2f×", t / base)
		printf "| %s | %s | %s | %s | %s | %s |\n", engine, num(t), num(mid(mbs, name)), num(mid(bop, name)), num(mid(aop, name)), ratio
	}
}' "$out"
