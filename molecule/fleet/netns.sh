#!/bin/bash
# Test harness: plug a container into the fleet scenario's test-made bridge, in the network
# namespace docker made for it (network_mode: none): a veth pair, ADDRESS/24 inside, the host's
# 10.77.0.1 as its route. Idempotent; prints "changed" when it plugged something.
#   netns.sh CONTAINER ADDRESS
set -euo pipefail
container=$1 address=$2
[[ $address =~ ^10\.77\.0\.[0-9]{1,3}$ ]] || { echo "netns.sh: $address is not on 10.77.0.0/24" >&2; exit 2; }
bridge=airigfl0
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
  ip addr add 10.77.0.1/24 dev "$bridge"
fi
ip link set "$bridge" up
pid=$(docker inspect -f '{{.State.Pid}}' -- "$container")
inside=(nsenter -t "$pid" -n)
if "${inside[@]}" ip -o addr show dev eth0 2>/dev/null | grep -q " $address/24 "; then
  exit 0
fi
host_end="fl${pid}"
ip link add "$host_end" type veth peer name eth0 netns "$pid"
ip link set "$host_end" master "$bridge" up
"${inside[@]}" ip addr add "$address/24" dev eth0
"${inside[@]}" ip link set eth0 up
"${inside[@]}" ip route add default via 10.77.0.1
echo changed
