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
# Defaults: session "batch_processor", start 1, end "" (to the last file), split
# "vqav2_4k", endpoint $AZURE_ENDPOINT, check interval 5 minutes, model $AZURE_DEPLOYMENT or
# "gpt-4.1-nano-3". Arguments after the seventh go to batch_processor.py as they are (for example
# --batch-dir DIR, --stale-after 120). Several sessions with different ranges may run side by side.
#
# The run lives in a screen session when screen is installed (screen -r NAME), else tmux
# (tmux attach -t NAME), else nohup. The log is logs/batch_processor_NAME_<time>.log
# (BATCH_LOG_DIR changes the folder; BATCH_DETACH=screen|tmux|nohup forces a method).
# AZURE_API_KEY must be set; it reaches batch_processor.py through the environment only.
set -euo pipefail
cd "$(dirname "$0")"

# shellcheck source=rollkit/detach.sh
. rollkit/detach.sh
die() { echo "run_batch_processor.sh: $*" >&2; exit 1; }

session=${1:-batch_processor}
start_index=${2:-1}
end_index=${3:-}
split=${4:-vqav2_4k}
endpoint=${5:-${AZURE_ENDPOINT:-}}
interval=${6:-5}
model=${7:-${AZURE_DEPLOYMENT:-gpt-4.1-nano-3}}
if [ $# -gt 7 ]; then shift 7; else shift $#; fi

[ -n "${AZURE_API_KEY:-}" ] || die "AZURE_API_KEY is not set; export it with the key of the Azure resource first"
[ -n "$endpoint" ] || die "no Azure endpoint: give it as the fifth argument or set AZURE_ENDPOINT"
case "$session" in *[!A-Za-z0-9_.-]*) die "session name may only hold letters, digits, _ . and -" ;; esac

python=.venv/bin/python
[ -x "$python" ] || python=python3
args=(batch_processor.py --split "$split" --start-index "$start_index" --azure-endpoint "$endpoint"
      --check-interval "$interval" --model "$model" --no-progress)
[ -n "$end_index" ] && args+=(--end-index "$end_index")
args+=("$@")

log_dir=${BATCH_LOG_DIR:-logs}
mkdir -p "$log_dir"
log="$log_dir/batch_processor_${session}_$(date +%Y%m%d_%H%M%S).log"
echo "$(date '+%F %T') $python ${args[*]}" >"$log"
quoted_log=$(printf %q "$log")
inner="$(printf '%q ' "$python" "${args[@]}") >>$quoted_log 2>&1; \
echo \"batch_processor.py exited with status \$? at \$(date '+%F %T')\" >>$quoted_log"

method=$(detach_method "${BATCH_DETACH:-}")
launch_detached "$method" "$session" "$inner" || exit 1
echo "started batch_processor.py with $method (session $session); log: $log"
echo "status: $python batch_processor.py --split $split --status"
