#!/usr/bin/env bash
# Run batch_processor.py detached, with a log file. The seed's positional arguments, in its order:
#
#   AZURE_API_KEY=... ./run_batch_processor.sh [screen_session_name] [batch_start_index] [batch_end_index] \
#       [split] [azure_endpoint] [check_interval] [model] [more batch_processor.py flags...]
#
# Example (batch_0001 to batch_0010 of batch_files/vqav2_4k/, polled every 5 minutes):
#   AZURE_API_KEY=... ./run_batch_processor.sh verify_1_10 1 10 vqav2_4k https://NAME.openai.azure.com 5 gpt-4.1-nano-3
#
# The range is the seed's: batch numbers as in the file names, from 1, both ends included, so two
# machines given "1 10" and "11 20" drive 20 files between them.
# Defaults: session "batch_processor", start 1, end "" (to the last file), split $SPLIT or
# "vqav2_4k", endpoint $AZURE_ENDPOINT, check interval 5 minutes, model $MODEL, else
# $AZURE_DEPLOYMENT, else "gpt-4.1-nano-3". Arguments after the seventh go to batch_processor.py as
# they are (for example --batch-dir DIR, --stale-after 120). Several sessions with different
# ranges may run side by side.
#
# Paths are the caller's: batch_files/SPLIT/ and logs/ are found from the folder you run it in,
# as the seed's script did. The run lives in a screen session when screen is installed
# (screen -r NAME), else tmux (tmux attach -t NAME), else nohup. The log is
# logs/batch_processor_NAME_<time>.log (BATCH_LOG_DIR changes the folder; BATCH_DETACH=screen|tmux|nohup
# forces a method). AZURE_API_KEY must be set; it reaches batch_processor.py through the environment
# only. If batch_processor.py stops in its first seconds (no manifest.json, a bad flag), the script
# says so with the end of the log and exits 1 (BATCH_START_WAIT: seconds to watch, default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac

# shellcheck source=rollkit/cli/detach.sh
. "$here/rollkit/cli/detach.sh"
die() { echo "run_batch_processor.sh: $*" >&2; exit 1; }

session=${1:-batch_processor}
start_index=${2:-1}
end_index=${3:-}
split=${4:-${SPLIT:-vqav2_4k}}
endpoint=${5:-${AZURE_ENDPOINT:-}}
interval=${6:-5}
model=${7:-${MODEL:-${AZURE_DEPLOYMENT:-gpt-4.1-nano-3}}}
if [ $# -gt 7 ]; then shift 7; else shift $#; fi

[ -n "${AZURE_API_KEY:-}" ] || die "AZURE_API_KEY is not set; export it with the key of the Azure resource first"
[ -n "$endpoint" ] || die "no Azure endpoint: give it as the fifth argument or set AZURE_ENDPOINT"
case "$session" in *[!A-Za-z0-9_.-]*) die "session name may only hold letters, digits, _ . and -" ;; esac

python=$here/.venv/bin/python
[ -x "$python" ] || python=python3
args=("$here/batch_processor.py" --split "$split" --start-index "$start_index" --azure-endpoint "$endpoint"
      --check-interval "$interval" --model "$model" --no-progress)
[ -n "$end_index" ] && args+=(--end-index "$end_index")
args+=("$@")

log_dir=${BATCH_LOG_DIR:-logs}
mkdir -p "$log_dir"
log_dir=$(cd "$log_dir" && pwd)
log="$log_dir/batch_processor_${session}_$(date +%Y%m%d_%H%M%S).log"
echo "$(date '+%F %T') $python ${args[*]}" >"$log"
quoted_log=$(printf %q "$log")
inner="cd $(printf %q "$PWD") && $(printf '%q ' "$python" "${args[@]}") >>$quoted_log 2>&1; \
echo \"batch_processor.py exited with status \$? at \$(date '+%F %T')\" >>$quoted_log"

method=$(detach_method "${BATCH_DETACH:-}")
launch_detached "$method" "$session" "$inner" || exit 1
# a missing manifest or a bad flag shows up in the first seconds: report it here, not "started"
for _ in $(seq $((${BATCH_START_WAIT:-5} * 10))); do
  sleep 0.1
  if grep -q "^batch_processor.py exited with status [1-9]" "$log"; then
    tail -n 15 "$log" >&2
    die "batch_processor.py failed at start; log: $log"
  fi
  grep -q "^batch_processor.py exited with status 0" "$log" && break
done
echo "started batch_processor.py with $method (session $session); log: $log"
echo "status: $python $here/batch_processor.py --split $split --status"
