#!/usr/bin/env bash
# Stops or starts one service of the running test bed, for outage tests and by hand:
#   testbed/service.sh stop moto     # SIGTERM by its pid file, waits until it has exited
#   testbed/service.sh start moto    # starts it again as testbed/up.sh does, and waits until it answers
# moto, Azurite, cosmium and Kafka save their state when stopped this way and load it when started, so a
# stop and a start is an outage, not a wipe (ElasticMQ keeps nothing). `start` runs testbed/up.sh, which
# starts exactly what is not running and re-checks the rest.
source "$(dirname "$0")/lib.sh"

usage() { die "usage: testbed/service.sh stop|start moto|elasticmq|azurite|cosmium|kafka"; }
[[ $# -eq 2 ]] || usage
action=$1 name=$2
case $name in moto | elasticmq | azurite | cosmium | kafka) ;; *) usage ;; esac
is_running kube-apiserver || die "the test bed is not running (testbed/up.sh starts it)"

case $action in
stop)
	is_running "$name" || die "$name is not running"
	pid=$(cat "$TESTBED_DIR/pids/$name.pid")
	kill -TERM "$pid"
	# Long enough for moto to finish its requests in progress and for Kafka to close its logs cleanly.
	for _ in $(seq 1 120); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) still runs 30 s after SIGTERM"
	rm -f "$TESTBED_DIR/pids/$name.pid"
	log "$name stopped (pid $pid)"
	;;
start)
	is_running "$name" && die "$name is already running"
	TESTBED_SKIP_INSTALL=1 bash "$TESTBED_SRC/up.sh"
	;;
*) usage ;;
esac
