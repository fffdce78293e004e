#!/usr/bin/env bash
# Run rollout.py detached, with a timestamped log file.
#
#   ./run_rollout.sh start [rollout.py flags]   start in the background; no flags: DEFAULT_ARGS below
#   ./run_rollout.sh status                     running or not, and the end of the log
#   ./run_rollout.sh logs                       follow the log (Ctrl-C stops following, not the run)
#   ./run_rollout.sh stop                       interrupt the run; finished rollouts are kept
#   ./run_rollout.sh                            the same as `start`
#
# Example:
#   AZURE_API_KEY=... ./run_rollout.sh start --input input_data_files/VQAv2/questions.jsonl \
#       --output rollout_output/vqav2.jsonl --azure-endpoint https://NAME.openai.azure.com \
#       --deployment gpt-4.1 --model_name gpt-4.1 --dataset-name vqav2 --num-rollouts 4 --num-mc 16
#
# The run lives in a screen session when screen is installed, else in tmux, else under nohup; attach
# (`screen -r rollout` / `tmux attach -t rollout`) to watch the log live. Keys come only from the
# environment: AZURE_API_KEY for --azure-endpoint, OPENAI_API_KEY (or the variable named by
# --api-key-env) for a --base-url that is not on this machine. A run stopped or killed resumes where
# it was when started again with the same flags.
#
# Paths are the caller's: relative --input/--output and the logs folder start from the folder you
# run it in (the script itself may live anywhere).
# Environment: ROLLOUT_NAME (session and file names, default "rollout", so runs can go side by side),
# ROLLOUT_LOG_DIR (default "logs"), ROLLOUT_DETACH (screen, tmux or nohup: force one); for `start`
# without flags, as the seed: SPLIT (default VQAv2: output rollout_output/SPLIT/rollouts.jsonl) and
# MODEL (default gpt-4.1: the deployment and model name), with AZURE_ENDPOINT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# `start` without flags: the bundled VQAv2 example on an Azure deployment. Edit, or pass flags.
model=${MODEL:-${AZURE_DEPLOYMENT:-gpt-4.1}}
DEFAULT_ARGS=(
  --input "$here/input_data_files/VQAv2/questions.jsonl" --output "rollout_output/${SPLIT:-VQAv2}/rollouts.jsonl"
  --dataset-name vqav2 --azure-endpoint "${AZURE_ENDPOINT:-}" --deployment "$model"
  --model_name "$model" --num-rollouts 4 --num-mc 16 --mc-mode exhaustive --concurrency 32
)

name="${ROLLOUT_NAME:-rollout}"
log_dir="${ROLLOUT_LOG_DIR:-logs}"
pid_file="$log_dir/$name.pid"
latest="$log_dir/$name.log"  # a link to the newest timestamped log
python=$here/.venv/bin/python
[ -x "$python" ] || python=python3
script=$here/rollout.py

# shellcheck source=rollkit/cli/detach.sh
. "$here/rollkit/cli/detach.sh"
die() { echo "run_rollout.sh: $*" >&2; exit 1; }

running_pid() {
  local pid
  pid=$(cat "$pid_file" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

flag_value() {  # the value given to flag $1 in the remaining arguments, or nothing
  local want=$1; shift
  while [ $# -gt 0 ]; do
    case "$1" in
      "$want") echo "${2:-}"; return ;;
      "$want"=*) echo "${1#*=}"; return ;;
    esac
    shift
  done
}

has_flag() { local want=$1; shift; for arg in "$@"; do [ "$arg" = "$want" ] && return 0; done; return 1; }

check_key() {  # fail before detaching when the endpoint's key variable is missing
  has_flag --dry-run "$@" && return 0
  local variable azure base
  variable=$(flag_value --api-key-env "$@")
  azure=$(flag_value --azure-endpoint "$@")
  base=$(flag_value --base-url "$@")
  if has_flag --azure-endpoint "$@"; then
    [ -n "$azure" ] || die "--azure-endpoint is empty (set AZURE_ENDPOINT or pass the URL)"
    variable=${variable:-AZURE_API_KEY}
  elif [ -n "$base" ]; then
    case "$base" in
      http://127.*|https://127.*|http://localhost*|https://localhost*|http://\[::1\]*) return 0 ;;
    esac
    variable=${variable:-OPENAI_API_KEY}
  else
    return 0  # --port needs no key; --endpoints files are checked by rollout.py as it starts
  fi
  [ -n "${!variable:-}" ] || die "the environment variable $variable is not set; export it with the API key first"
}

start() {
  [ $# -gt 0 ] || set -- "${DEFAULT_ARGS[@]}"
  if pid=$(running_pid); then die "already running (pid $pid); ./run_rollout.sh stop first"; fi
  check_key "$@"
  mkdir -p "$log_dir"
  local log method inner
  log="$log_dir/${name}_$(date +%Y%m%d_%H%M%S).log"
  [ -e "$log" ] && log="${log%.log}_$$.log"  # two starts within a second keep both logs
  ln -sfn "$(basename "$log")" "$latest"
  rm -f "$pid_file"
  method=$(detach_method "${ROLLOUT_DETACH:-}")
  echo "$(date '+%F %T') $python rollout.py $*" >"$log"
  # Job control on (set -m): a background job would otherwise ignore SIGINT, and stop sends SIGINT.
  inner="set -m; cd $(printf %q "$PWD") || exit 1
$(printf '%q ' "$python" "$script" "$@") >>$(printf %q "$log") 2>&1 & child=\$!
echo \$child >$(printf %q "$pid_file")"
  [ "$method" = nohup ] || inner+=$'\n'"tail -n +1 -f --pid=\$child $(printf %q "$log") &"
  inner+=$'\n'"wait \$child; echo \"rollout.py exited with status \$? at \$(date '+%F %T')\" >>$(printf %q "$log")"
  launch_detached "$method" "$name" "$inner" || die "ROLLOUT_DETACH must be screen, tmux or nohup"
  # A bad flag or key is the first thing rollout.py prints: wait for its first output (imports take
  # seconds, many on a loaded machine), then a second more for an exit, and report a failure here.
  local tick first=
  for tick in $(seq 600); do
    sleep 0.1
    [ -s "$pid_file" ] || continue
    if grep -q "^rollout.py exited with status [1-9]" "$log"; then
      tail -n 15 "$log" >&2
      die "rollout.py failed at start; log: $log"
    fi
    grep -q "^rollout.py exited with status 0" "$log" && break
    [ -z "$first" ] && [ "$(wc -l <"$log")" -gt 1 ] && first=$tick
    [ -n "$first" ] && [ $((tick - first)) -ge 10 ] && break
  done
  echo "started with $method (pid $(cat "$pid_file" 2>/dev/null || echo '?')); log: $log"
  echo "follow it with ./run_rollout.sh logs; stop it with ./run_rollout.sh stop"
}

stop() {
  local pid
  pid=$(running_pid) || { echo "not running"; return 0; }
  kill -INT "$pid"  # like Ctrl-C: rollout.py saves what is done and prints its summary
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || { echo "stopped (pid $pid)"; return 0; }; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  echo "stopped (pid $pid) with SIGTERM after 30 s"
}

status() {
  local pid
  if pid=$(running_pid); then echo "running (pid $pid); log: $(readlink -f "$latest")"
  else echo "not running"; fi
  [ -e "$latest" ] && tail -n 12 "$latest" | tr '\r' '\n' | tail -n 12
  return 0
}

logs() {
  [ -e "$latest" ] || die "no log yet in $log_dir/"
  if pid=$(running_pid); then tail -n 50 -f --pid="$pid" "$latest"; else tail -n 50 "$latest"; fi
}

command=${1:-start}
[ $# -gt 0 ] && shift
case "$command" in
  start) start "$@" ;;
  stop) stop ;;
  status) status ;;
  logs) logs ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command $command; use start, stop, status or logs" ;;
esac
