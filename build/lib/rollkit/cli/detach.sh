# Shared by run_rollout.sh and run_batch_processor.sh (sourced, not run): start a bash command line
# in a detached screen or tmux session, or under nohup.

detach_method() {  # $1: a method forced by the caller's environment, or empty to pick one
  if [ -n "${1:-}" ]; then echo "$1"
  elif command -v screen >/dev/null; then echo screen
  elif command -v tmux >/dev/null; then echo tmux
  else echo nohup; fi
}

# launch_detached METHOD SESSION INNER: run the bash command line INNER detached.
# screen and nohup inherit this environment. An already running tmux server starts sessions with
# *its* environment instead, so the exported *_KEY variables go through an owner-only file that the
# session reads and deletes: keys never appear in argv or in a file left behind.
launch_detached() {
  local method=$1 session=$2 inner=$3 env_file variable
  case "$method" in
    screen) screen -dmS "$session" bash -c "$inner" ;;
    tmux)
      env_file=$(umask 077 && mktemp)
      for variable in $(compgen -e | grep -E '_KEY$' || true); do
        printf 'export %s=%q\n' "$variable" "${!variable}" >>"$env_file"
      done
      tmux new-session -d -s "$session" \
        "bash -c $(printf %q ". $(printf %q "$env_file"); rm -f $(printf %q "$env_file"); $inner")" ;;
    nohup) nohup bash -c "$inner" </dev/null >/dev/null 2>&1 & ;;
    *) echo "the detach method must be screen, tmux or nohup, not $method" >&2; return 1 ;;
  esac
}
