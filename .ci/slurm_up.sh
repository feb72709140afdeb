#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_slurm.py (and by hand):
#
#   .ci/slurm_up.sh          install Slurm and munge when missing (Debian/Ubuntu apt-get, as root), start munged and
#                            a cluster of one node with this machine's CPUs; print the slurm.conf path on stdout.
#                            Idempotent: a cluster this script started that answers is reused.
#   .ci/slurm_up.sh --down   stop that cluster (scontrol shutdown) and the munged this script started.
#
# Its state, spool, logs, pid files and slurm.conf live in $POLYDICE_SLURM_DIR (default /tmp/polydice-slurm); Slurm's
# commands find it with SLURM_CONF=<that folder>/slurm.conf (this script never touches /etc/slurm). Measured on a
# 2-core Debian 12 VM: the install takes about 10 s, the cluster is idle in about a second.
# Exit status: 0 when the cluster is up (or down with --down), 1 with a sentence on stderr when it cannot be.
set -uo pipefail

DIR="${POLYDICE_SLURM_DIR:-/tmp/polydice-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

say() { echo "slurm_up: $*" >&2; }
fail() { say "$*"; exit 1; }

answers() {  # the node of our conf is up (idle, mixed or allocated)
    [ -f "$CONF" ] && command -v sinfo >/dev/null 2>&1 &&
        timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'
}

stop_pid_file() {  # stop the process of a pid file, if it is alive
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null) || return 0
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

if [ "${1:-}" = "--down" ]; then
    if [ -f "$CONF" ] && command -v scontrol >/dev/null 2>&1; then
        timeout 20 scontrol shutdown >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1 || pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1 || break
            sleep 0.2
        done
    fi
    stop_pid_file "$DIR/slurmctld.pid"
    stop_pid_file "$DIR/slurmd.pid"
    stop_pid_file "$DIR/munged.pid"
    say "stopped the cluster of $CONF"
    exit 0
fi

mkdir -p "$DIR" || fail "cannot create $DIR."
if answers; then
    say "reusing the running cluster of $CONF"
    echo "$CONF"
    exit 0
fi

# 1. the packages
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1 ||
    ! command -v munged >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail "Slurm is not installed and installing it needs root (apt-get)."
    command -v apt-get >/dev/null 2>&1 || fail "Slurm is not installed and this machine has no apt-get to install it."
    packages=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >"$DIR.apt.log" 2>&1; then
        apt-get update -q >>"$DIR.apt.log" 2>&1
        apt-get install -y -q --no-install-recommends "${packages[@]}" >>"$DIR.apt.log" 2>&1 ||
            fail "apt-get could not install ${packages[*]} (see $DIR.apt.log)."
    fi
fi
[ "$(id -u)" = 0 ] || fail "starting munged and the Slurm daemons needs root."

# 2. munge: its key comes with the package; munged runs as the munge user
[ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 \
    status=none && chown -R munge:munge /etc/munge && chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key; } ||
    fail "could not create /etc/munge/munge.key."
mkdir -p "$DIR"/state "$DIR"/spool /run/munge
chown munge:munge /run/munge
chmod 755 "$DIR"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid >/dev/null 2>&1 || fail "munged does not start."
    cp /run/munge/munged.pid "$DIR/munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || fail "munged started but does not answer."
fi

# 3. the configuration: one node with this machine's CPUs, no cgroups
stop_pid_file "$DIR/slurmctld.pid"  # a cluster of ours that no longer answers
stop_pid_file "$DIR/slurmd.pid"
HOST=$(hostname -s)
cat >"$CONF" <<EOF
# Written by .ci/slurm_up.sh: a one-node cluster for nnunet-polydice's tests.
ClusterName=polydice
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
MailProg=/bin/true
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# 4. the daemons, in the background
nohup slurmctld -D -f "$CONF" >>"$DIR/slurmctld.out" 2>&1 &
echo $! >"$DIR/slurmctld.pid"
nohup slurmd -D -f "$CONF" >>"$DIR/slurmd.out" 2>&1 &
echo $! >"$DIR/slurmd.pid"
for _ in $(seq 100); do answers && break; sleep 0.2; done
answers || fail "the cluster did not come up in 20 s (see $DIR/slurmctld.log and $DIR/slurmd.log)."
say "started a one-node cluster ($(nproc) CPUs); SLURM_CONF=$CONF"
echo "$CONF"
