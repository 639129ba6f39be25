#!/usr/bin/env bash
# Start a single-node Ceph cluster (1 mon, 1 BlueStore-on-file OSD, auth none) with a RADOS
# Gateway on 127.0.0.1, for tests. Usage: ceph.sh start DIR RGW_PORT ACCESS_KEY SECRET_KEY
#                                         ceph.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; D=${2:?dir}
stop() {
  for p in "$D"/run/*.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  pkill -f -- "-c $D/ceph.conf" 2>/dev/null || true
}
if [ "$cmd" = stop ]; then stop; exit 0; fi
PORT=${3:?rgw port}; AK=${4:?access key}; SK=${5:?secret key}
here=$(cd "$(dirname "$0")" && pwd)
MONPORT=$(python3 "$here/free-port.py")
rm -rf "$D"; mkdir -p "$D"/{mon,osd,run,log}
FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
CONF="$D/ceph.conf"
cat > "$CONF" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MONPORT]
mon initial members = a
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
# radosgw asks for a secure connection mode, which auth none cannot give; crc it is.
ms mon client mode = crc
ms client mode = crc
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# Test clusters live on whatever disk the machine has: do not refuse to start on a full-ish one.
mon data avail crit = 1
mon data avail warn = 2
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
keyring = $D/keyring
[mon]
mon data = $D/mon
[osd]
osd data = $D/osd
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mount = false
osd memory target = 536870912
bluestore cache autotune = false
bluestore cache size = 134217728
[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
rgw enable usage log = false
rgw dns name = localhost
# SSE-KMS with Ceph's built-in "testing" key store (test keys only), over plain HTTP.
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
CONF
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon -c "$CONF" -i a </dev/null >/dev/null 2>&1
C="ceph -c $CONF --connect-timeout 20"
OSD_UUID=$(python3 -c 'import uuid; print(uuid.uuid4())')
OSD_ID=$($C osd new "$OSD_UUID")
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.log" 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID" </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 60); do
  $C osd stat 2>/dev/null | grep -q "1 up" && break
  sleep 1
done
$C osd stat | grep -q "1 up" || { echo "ceph osd did not come up; see $D/log" >&2; exit 1; }
radosgw -c "$CONF" -n client.rgw.test </dev/null >/dev/null 2>&1
for _ in $(seq 1 90); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 1
done
curl -fs -o /dev/null "http://127.0.0.1:$PORT/" || { echo "radosgw did not answer on $PORT; see $D/log" >&2; exit 1; }
radosgw-admin -c "$CONF" user create --uid test --display-name test --access-key "$AK" --secret "$SK" >/dev/null
echo "ceph rgw ready on http://127.0.0.1:$PORT"
