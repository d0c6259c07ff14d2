#!/usr/bin/env bash
# A local possync deployment for trying things: HQ, two branches (b1, b2) and two
# terminals per branch, all on 127.0.0.1 with mutual TLS and device tokens made here.
#
#   deploy/local.sh [--once] [--dir DIR] [--possync BIN]
#
# DIR [./possync-local] holds the PKI (pki/), each node's data and log. HQ loads a
# catalogue of 50 products with stock for both branches; every terminal waits until it
# has synced, rings up 5 sales and prints its status; then HQ counts the sales.
# Without --once the HQ and branches keep running (Ctrl-C stops everything); more
# terminals can be attached with the commands printed at the end. With --once it stops
# after checking that HQ holds all 20 sales (exit 0) or not (exit 1); it removes DIR first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=./possync-local
bin="$root/build/tools/possync"
once=0
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1; shift ;;
    --dir) dir="$2"; shift 2 ;;
    --possync) bin="$2"; shift 2 ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "local.sh: $bin is not built (see README quick start)" >&2; exit 1; }
# --once checks a count of sales: it starts from empty stores every time.
[ "$once" = 1 ] && rm -rf "$dir"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pki="$dir/pki"
tenant=demo
pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

hq_id=4000000000000001
declare -A branch_id=([b1]=00000000000000b1 [b2]=00000000000000b2)
declare -A term_ids=([b1]="0000000000000a11 0000000000000a12" [b2]="0000000000000b21 0000000000000b22")

certs=("hq=$hq_id" admin=admin)
for b in b1 b2; do
  certs+=("$b=${branch_id[$b]}")
  for t in ${term_ids[$b]}; do certs+=("t$t=$t"); done
done
"$root/deploy/make-certs.sh" "$pki" --token-key "${certs[@]}" >/dev/null
tls() { echo "--tls-ca $pki/ca.pem --tls-cert $pki/$1.pem --tls-key $pki/$1.key"; }

devices=()
for b in b1 b2; do
  devices+=(--device "$tenant:$b:${branch_id[$b]}:branch")
  "$bin" ctl token issue --key "$pki/token.key" --tenant $tenant --branch $b --node "${branch_id[$b]}" \
    --role branch --ttl 30d --out "$pki/$b.token" >/dev/null
  for t in ${term_ids[$b]}; do
    devices+=(--device "$tenant:$b:$t:terminal")
    "$bin" ctl token issue --key "$pki/token.key" --tenant $tenant --branch $b --node "$t" --ttl 30d \
      --out "$pki/t$t.token" >/dev/null
  done
done

# HQ with its console on a FIFO (kept open by fd 3) so the script can load the catalogue.
rm -f "$dir/hq.in" && mkfifo "$dir/hq.in"
# shellcheck disable=SC2046
"$bin" hq --dir "$dir/hq" --node-id $hq_id --tenant $tenant --listen 127.0.0.1:0 --port-file "$dir/hq.port" \
  --console $(tls hq) --token-key "$pki/token.pub" "${devices[@]}" --log-level warn \
  <"$dir/hq.in" >"$dir/hq.out" 2>"$dir/hq.log" &
pids+=($!)
exec 3>"$dir/hq.in"
for _ in $(seq 100); do [ -s "$dir/hq.port" ] && break; sleep 0.1; done
hq_port="$(cat "$dir/hq.port")"
echo "catalogue 50 100 b1" >&3
for i in $(seq 1 50); do printf 'stock p%05d 100 b2\n' "$i" >&3; done

for b in b1 b2; do
  # shellcheck disable=SC2046
  "$bin" branch --dir "$dir/$b" --node-id "${branch_id[$b]}" --tenant $tenant --branch $b \
    --listen 127.0.0.1:0 --port-file "$dir/$b.port" --upstream 127.0.0.1:$hq_port $(tls $b) \
    --token-file "$pki/$b.token" --token-key "$pki/token.pub" --log-level warn >"$dir/$b.out" 2>"$dir/$b.log" &
  pids+=($!)
done
for b in b1 b2; do
  for _ in $(seq 100); do [ -s "$dir/$b.port" ] && break; sleep 0.1; done
done

printf 'wait-synced 60\nwait-count product 50 60\nsell-n 5\nwait-synced 60\nstatus\n' >"$dir/terminal.script"
tpids=()
for b in b1 b2; do
  for t in ${term_ids[$b]}; do
    # shellcheck disable=SC2046
    "$bin" terminal --dir "$dir/t$t" --node-id "$t" --tenant $tenant --branch $b \
      --upstream "127.0.0.1:$(cat "$dir/$b.port")" $(tls "t$t") --token-file "$pki/t$t.token" \
      --script "$dir/terminal.script" --log-level warn >"$dir/t$t.out" 2>"$dir/t$t.log" &
    tpids+=($!)
  done
done
failed=0
for p in "${tpids[@]}"; do wait "$p" || failed=1; done
for b in b1 b2; do
  for t in ${term_ids[$b]}; do echo "terminal $t ($b): $(tail -1 "$dir/t$t.out" | cut -c1-160)"; done
done

echo "count sale" >&3
sleep 1
sales_line="$(grep -o '"count":[0-9]*' "$dir/hq.out" | tail -1 || true)"
echo "HQ: $sales_line sales (expected 20)"
if [ "$once" = 1 ]; then
  echo quit >&3
  [ "$failed" = 0 ] && [ "$sales_line" = '"count":20' ] && { echo "local.sh: OK"; exit 0; }
  echo "local.sh: FAILED (logs in $dir)" >&2
  exit 1
fi
cat <<EOT
HQ 127.0.0.1:$hq_port, branches b1 127.0.0.1:$(cat "$dir/b1.port"), b2 127.0.0.1:$(cat "$dir/b2.port").
Logs and data in $dir. Another terminal of b1 (register it at HQ first):
  $bin terminal --dir $dir/tX --node-id 0000000000000a11 --tenant $tenant --branch b1 \\
      --upstream 127.0.0.1:$(cat "$dir/b1.port") $(tls t0000000000000a11) --token-file $pki/t0000000000000a11.token
Ctrl-C stops everything.
EOT
wait
