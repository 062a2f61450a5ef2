#!/usr/bin/env bash
# Regenerates server/link-order.txt (see server/build.rs): builds what `cargo xtask bench`
# builds, runs the bench's webhook and read loads with every `serve` process under callgrind
# (which lists each function that ran, start-up included), and orders those functions.
# Needs valgrind and wrk (apt-get install -y valgrind wrk); about five minutes. Rebuild after.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p dashboard-server --bins --examples -p dashboard-tests --bin bench
work=$(mktemp -d)
dumper=""
# Puts the real binary back however the script ends (the wrapper below replaces it meanwhile).
restore() {
  if [ -n "$dumper" ]; then kill "$dumper" 2>/dev/null || true; fi
  if [ -f "$work/dashboard-server" ]; then mv -f "$work/dashboard-server" target/release/; fi
  rm -rf "$work"
}
trap restore EXIT
mv target/release/dashboard-server "$work/dashboard-server"
mkdir "$work/dumps"
cat > target/release/dashboard-server <<WRAP
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  exec valgrind --tool=callgrind --demangle=no --dump-instr=no --dump-line=no \
    --compress-strings=no --callgrind-out-file="$work/dumps/cg.%p" "$work/dashboard-server" "\$@"
fi
exec "$work/dashboard-server" "\$@"
WRAP
chmod +x target/release/dashboard-server
# The bench stops servers with SIGKILL: dump every running callgrind each second instead.
(while true; do callgrind_control -d >/dev/null 2>&1 || true; sleep 1; done) &
dumper=$!
BENCH_ONLY=webhooks BENCH_WEBHOOK_ROUNDS=1 target/release/bench >/dev/null
BENCH_ONLY=reads target/release/bench 2s 4 >/dev/null
kill "$dumper"
dumper=""
python3 tools/link-order/order.py "$work/dashboard-server" "$work/dumps" server/link-order.txt
