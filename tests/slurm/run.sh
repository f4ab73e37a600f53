#!/usr/bin/env bash
# Cluster test of `tinct colorize --shard auto --skip-existing --report` on a real one-node
# Slurm cluster (Debian's slurm-wlm and munge) started on localhost for the test.
#
#   bash tests/slurm/run.sh [PATH_TO_TINCT]      (default: target/release/tinct)
#
# It makes 242 test images, submits ONE array job of 4 tasks, requeues one task while it is
# part-way through its shard (Slurm sends it SIGTERM, then runs it again), waits for the array
# and checks (tests/slurm/check.py) that every input was coloured exactly once into a valid
# image, that no partial file is left, and that the reports tell the same story.
#
# Prints `slurm test: SKIPPED: <reason>` and exits 0 when Slurm or munge cannot be installed or
# their daemons cannot run here (e.g. not root, no apt, a sandbox). Any other failure exits 1.
# Everything lives in a private temporary folder that is removed on exit, daemons included;
# a system Slurm or munge is left alone (own config via SLURM_CONF, own munge socket and ports).
#
# Knobs (environment): TINCT_SLURM_SIZE (--size, default 384), TINCT_SLURM_KEEP=1 (keep the
# temporary folder for inspection).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TINCT="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinct}"
SIZE="${TINCT_SLURM_SIZE:-384}"
KEEP="${TINCT_SLURM_KEEP:-0}"
NODE=tinct1       # the node's name in the test cluster (slurmd -N), independent of the hostname
TASKS=4           # array tasks = shards
KILL_TASK=1       # the task requeued mid-way
START=$SECONDS

say() { echo "slurm test: [$((SECONDS - START)) s] $*"; }
die() { echo "slurm test: FAILED: $*" >&2; exit 1; }
skip() { echo "slurm test: SKIPPED: $*"; exit 0; }

# ---------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------

check_tinct() {
  [ -x "$TINCT" ] || die "$TINCT not found or not executable (run cargo build --release first)"
  TINCT="$(cd "$(dirname "$TINCT")" && pwd)/$(basename "$TINCT")"  # jobs run in another folder
  "$TINCT" colorize --help 2>/dev/null | grep -q -- '--shard' \
    || die "$TINCT colorize has no --shard option"
  # A copied binary finds no models beside itself; the source tree's are the shipped ones.
  if [ -z "${TINCT_MODELS:-}" ] && [ -d "$ROOT/models" ]; then
    export TINCT_MODELS="$ROOT/models"
  fi
}

# Installs, where missing, what the test needs from Debian. Skips (exit 0) when that is
# impossible here: installing is the environment's business, not tinct's.
install_prereqs() {
  local missing=()
  local c
  for c in slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$c" >/dev/null 2>&1 || { missing+=(slurm-wlm); break; }
  done
  command -v munged >/dev/null 2>&1 || missing+=(munge)
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || skip "${missing[*]} not installed and not root to install them"
  command -v apt-get >/dev/null 2>&1 || skip "${missing[*]} not installed and no apt-get"
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1; then
    skip "apt-get could not install ${missing[*]}"
  fi
}

# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------

T=""             # the private temporary folder
PIDS=()          # daemons started here, stopped in reverse order on exit
JOB=""           # the array job's id

cleanup() {
  local rc=$?
  set +e
  if [ -n "$JOB" ]; then
    # slurmstepd outlives slurmd, so end the job through Slurm before stopping the daemons.
    scancel "$JOB" >/dev/null 2>&1
    local _
    for _ in $(seq 1 30); do
      [ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  local p
  for ((p = ${#PIDS[@]} - 1; p >= 0; p--)); do
    kill -TERM "${PIDS[p]}" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ -n "$T" ]; then
    # Anything left that was started for this run (a stray slurmstepd or tinct) carries
    # the run's marker in its environment.
    local e pid
    for e in /proc/[0-9]*/environ; do
      pid="${e#/proc/}"; pid="${pid%/environ}"
      if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qx "TINCT_SLURM_TEST_RUN=$T"; then
        kill -KILL "$pid" 2>/dev/null
      fi
    done
    if [ "$KEEP" = 1 ]; then
      say "kept $T"
    else
      rm -rf "$T"
    fi
  fi
  exit "$rc"
}

# Two free TCP ports for slurmctld and slurmd (not 6817/6818: a real Slurm may be running).
free_ports() {
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# The daemon's log tail, for a SKIPPED or FAILED line that says why.
last_log() { tail -n "${2:-1}" "$T/log/$1.log" 2>/dev/null | sed 's/^\[[^]]*\] //'; }

write_config() {
  mkdir -p "$T"/{munge,state,spool,run,log,work}
  chmod 700 "$T/munge"
  # A fresh key: the test never needs (nor touches) the machine's /etc/munge/munge.key.
  head -c 1024 /dev/urandom >"$T/munge/munge.key"
  chmod 400 "$T/munge/munge.key"

  # The node as slurmd sees it (CPUs, sockets, cores, memory), under the test's node name.
  local hw
  hw="$(slurmd -C 2>/dev/null | head -n 1)" || true
  [[ "$hw" == NodeName=* ]] || skip "slurmd -C did not describe this machine"
  hw="${hw#NodeName=* }"
  CPUS="$(sed -n 's/.*\bCPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
  MEM="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"

  local ports
  read -r -a ports <<<"$(free_ports)"
  : >"$T/plugstack.conf"  # none of the machine's SPANK plugins
  cat >"$T/slurm.conf" <<EOF
ClusterName=tinct-test
SlurmctldHost=localhost
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
PlugStackConfig=$T/plugstack.conf
# No cgroups: containers and CI runners rarely let a daemon manage them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# A requeued task must run again; it gets SIGTERM, then SIGKILL KillWait seconds later.
JobRequeue=1
KillWait=30
# Keep finished jobs visible to squeue/scontrol until the checks have read their states.
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# Starts a daemon in the foreground of a background job, so that its pid is ours to stop.
start_daemon() {
  local name="$1"
  shift
  TINCT_SLURM_TEST_RUN="$T" "$@" >"$T/log/$name.out" 2>&1 &
  PIDS+=($!)
  sleep 0.5
  kill -0 "$!" 2>/dev/null \
    || skip "$name cannot run here: $(tail -n 1 "$T/log/$name.out") $(last_log "$name")"
}

start_cluster() {
  start_daemon munged munged -F --force --key-file="$T/munge/munge.key" \
    --socket="$T/munge/munge.socket" --pid-file="$T/run/munged.pid" \
    --log-file="$T/log/munged.log" --seed-file="$T/munge/munged.seed"
  start_daemon slurmctld slurmctld -D -f "$T/slurm.conf"
  start_daemon slurmd slurmd -D -N "$NODE" -f "$T/slurm.conf"

  local state="" deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
    [ "$state" = idle ] && break
    local p
    for p in "${PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || skip "a Slurm daemon stopped while starting: \
slurmctld: $(last_log slurmctld) slurmd: $(last_log slurmd)"
    done
    sleep 1
  done
  [ "$state" = idle ] || skip "node $NODE not idle after 60 s (state '${state:-none}'): \
slurmctld: $(last_log slurmctld) slurmd: $(last_log slurmd)"
  say "cluster up: node $NODE with $CPUS CPUs and $MEM MB, $(sinfo -V)"
}

# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------

make_images() {
  local w="$T/work"
  mkdir -p "$w/in/sub" "$w/out" "$w/reports" "$w/logs"
  # 240 distinct grayscale frames, plus two in a sub-folder whose names repeat top-level
  # names at another size: outputs must follow relative paths, not base names.
  ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=320x240:rate=5 \
    -vf format=gray -frames:v 240 "$w/in/img%04d.png" || die "ffmpeg could not make images"
  ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=200x150:rate=5 \
    -vf format=gray -frames:v 2 "$w/in/sub/img%04d.png" || die "ffmpeg could not make images"
  NIN="$(find "$w/in" -type f -name '*.png' | wc -l)"
}

submit() {
  local w="$T/work"
  # The recipe of deploy/slurm/colorize-array.sbatch, cut down. Each task has the node to
  # itself (--exclusive), so the tasks run one after another and the outputs that appear
  # while a task runs are that task's; each uses at most 2 threads, so that a task lasts about
  # as long on a big machine as on a 2-core one and can be caught mid-way.
  local threads=$((CPUS < 2 ? CPUS : 2))
  cat >"$w/colorize.sbatch" <<'EOF'
#!/bin/bash
exec "$TINCT" colorize in/ -o out/ --shard auto --skip-existing \
  --report "reports/task${SLURM_ARRAY_TASK_ID}-attempt${SLURM_RESTART_COUNT:-0}.json" \
  -q --size "$SIZE"
EOF
  JOB="$(cd "$w" && TINCT="$TINCT" SIZE="$SIZE" RAYON_NUM_THREADS="$threads" \
    TINCT_SLURM_TEST_RUN="$T" \
    sbatch --parsable --array=0-$((TASKS - 1)) --requeue --exclusive \
      --job-name=tinct-colorize --chdir="$w" --output="$w/logs/slurm-%A_%a.out" \
      colorize.sbatch)" || die "sbatch failed: $(last_log slurmctld)"
  JOB="${JOB%%;*}"
  say "submitted array job $JOB ($TASKS tasks, --size $SIZE, $threads threads each) over $NIN images"
}

# The states of the array's tasks, one "TASK STATE REASON" line each (finished ones too).
task_states() { squeue -h -r -t all -j "$JOB" -o '%K %T %r' 2>/dev/null | sort -n; }
task_state() { task_states | awk -v t="$1" '$1 == t { print $2; exit }'; }
count_outputs() { find "$T/work/out" -type f ! -name '.*' | wc -l; }

# Waits until task KILL_TASK has written some (not all) of its outputs, then requeues it.
requeue_mid_way() {
  local state="" deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(task_state "$KILL_TASK")"
    case "$state" in
      RUNNING) break ;;
      PENDING | CONFIGURING | "") sleep 0.2 ;;
      *) die "task $KILL_TASK is $state before it could be requeued" ;;
    esac
  done
  [ "$state" = RUNNING ] || die "task $KILL_TASK did not start within 120 s: $(task_states | tr '\n' ' ')"
  # The tasks run one at a time, so new outputs from now on are this task's. Its share is
  # about NIN/TASKS; requeue it after an eighth of that, well before it can finish.
  local base want=$((NIN / TASKS / 8 + 1)) n=0
  base="$(count_outputs)"
  deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    n=$(($(count_outputs) - base))
    [ "$n" -ge "$want" ] && break
    [ "$(task_state "$KILL_TASK")" = RUNNING ] \
      || die "task $KILL_TASK ended after $n outputs, before it was requeued (raise TINCT_SLURM_SIZE)"
    sleep 0.1
  done
  [ "$n" -ge "$want" ] || die "task $KILL_TASK wrote $n outputs in 120 s"
  scontrol requeue "${JOB}_${KILL_TASK}" || die "scontrol requeue ${JOB}_${KILL_TASK} failed"
  say "requeued task $KILL_TASK after it wrote $n outputs"
}

# Waits for every task to finish, starting the requeued task again without delay: Slurm
# gives a requeued job a begin time of now + the credential lifetime (AuthInfo cred_expire,
# 120 s by default), and holds it if its launch failed.
wait_for_array() {
  local states reason seen="" nudged=0 released=0 deadline=$((SECONDS + 180))
  while [ "$SECONDS" -lt "$deadline" ]; do
    states="$(task_states)"
    [ -n "$states" ] || die "array job $JOB vanished from squeue"
    if ! awk '$2 ~ /^(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|RESIZING|SUSPENDED|SIGNALING|STAGE_OUT)$/ { busy = 1 } END { exit !busy }' <<<"$states"; then
      break
    fi
    reason="$(awk -v t="$KILL_TASK" '$1 == t && ($2 == "PENDING" || $2 == "REQUEUE_HOLD") { print $3 }' <<<"$states")"
    case "$reason" in
      *Held*)
        if [ "$released" = 0 ]; then
          say "task $KILL_TASK is held ($reason) after its requeue: releasing it"
          scontrol release "${JOB}_${KILL_TASK}" || die "scontrol release failed"
          released=1
        fi
        ;;
      BeginTime)
        # Not at once: the new launch credential must be newer than the old run's revocation.
        [ -n "$seen" ] || seen=$SECONDS
        if [ "$nudged" = 0 ] && [ $((SECONDS - seen)) -ge 2 ]; then
          say "task $KILL_TASK is pending (BeginTime) after its requeue: setting StartTime=now"
          scontrol update JobId="${JOB}_${KILL_TASK}" StartTime=now \
            || die "scontrol update StartTime=now failed"
          nudged=1
        fi
        ;;
    esac
    sleep 0.2
  done
  FINAL_STATES="$(task_states)"
  if awk '$2 !~ /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$/ { bad = 1 } END { exit !bad }' <<<"$FINAL_STATES"; then
    die "array job $JOB not finished after 180 s: $(tr '\n' ' ' <<<"$FINAL_STATES")"
  fi
  local restarts
  restarts="$(scontrol show job "${JOB}_${KILL_TASK}" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' | head -n 1)"
  [ "${restarts:-0}" -ge 1 ] || die "task $KILL_TASK was never restarted (Restarts=${restarts:-?})"
  if awk '$2 != "COMPLETED" { bad = 1 } END { exit !bad }' <<<"$FINAL_STATES"; then
    local f
    for f in "$T"/work/logs/*.out; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done
    die "not every task completed: $(tr '\n' ' ' <<<"$FINAL_STATES")"
  fi
}

# ---------------------------------------------------------------------------------------------

main() {
  install_prereqs
  check_tinct
  # This test's cluster only: nothing from an enclosing Slurm job or the user's defaults.
  local v
  for v in $(compgen -e); do
    case "$v" in SLURM_* | SBATCH_* | SQUEUE_* | SINFO_* | SCONTROL_* | SCANCEL_*) unset "$v" ;; esac
  done
  [ "$(id -u)" = 0 ] || skip "a private Slurm cluster needs root (slurmd runs jobs as their user)"

  T="$(mktemp -d "${TMPDIR:-/tmp}/tinct-slurm.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  export SLURM_CONF="$T/slurm.conf"

  write_config
  start_cluster
  make_images
  submit
  requeue_mid_way
  wait_for_array
  say "array finished: $(awk '{ printf "%s%s=%s", sep, $1, $2; sep=" " }' <<<"$FINAL_STATES")"

  python3 "$HERE/check.py" --work "$T/work" --tasks "$TASKS" --killed "$KILL_TASK" \
    || die "checks failed (work folder: $T/work; TINCT_SLURM_KEEP=1 keeps it)"
  say "PASSED"
}

main "$@"
