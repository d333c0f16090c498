# kafka_seeds.py: regenerate test/fuzz/corpus/fuzz-kafka/ (the seeds of
# fuzz-kafka) from the requests real clients send: a one-node cluster whose
# Kafka listener is advertised through a recording proxy, driven by kcat
# (metadata, produce with every codec and with a null header value,
# consume, time lookup), kafkajs
# (admin, InitProducerId, Produce v7) and confluent-kafka's AdminClient
# (CreateTopics, DeleteTopics). The first request of each API and version
# is kept, plus one Produce per codec.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/fuzz/kafka_seeds.py
import os, socket, struct, subprocess, sys, threading, time
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(TOP, "test", "integration"))
from kafka_cluster import KafkaCluster, kcat
from harness import free_ports
OUT = os.path.join(HERE, "corpus", "fuzz-kafka")
seen = {}
def pump(src, dst, record):
    buf = b""
    while True:
        d = src.recv(65536)
        if not d:
            break
        dst.sendall(d)
        if record:
            buf += d
            while len(buf) >= 4:
                n = struct.unpack(">i", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                frame = buf[:4 + n]; buf = buf[4 + n:]
                key, ver = struct.unpack(">hh", frame[4:8])
                name = f"seed-api{key}-v{ver}"
                if name not in seen:
                    seen[name] = True
                    open(os.path.join(OUT, name), "wb").write(frame)
class C(KafkaCluster):
    def argv(self, i):
        a = super().argv(i)
        if i == 1:
            a += ["--kafka-advertise", f"127.0.0.1:{PROXY}"]
        else:
            a = [x if not x.startswith("1=") or "/" in x else f"1=127.0.0.1:{PROXY}" for x in a]
        return a
PROXY = free_ports(1)[0]
with C(n=1, name="capture") as c:
    c.start()
    c.tally_ok("topic", "create", "warmup")
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", PROXY)); ls.listen(16)
    def acc():
        while True:
            cs, _ = ls.accept()
            ss = socket.create_connection(("127.0.0.1", c.kafka[1]))
            threading.Thread(target=pump, args=(cs, ss, True), daemon=True).start()
            threading.Thread(target=pump, args=(ss, cs, False), daemon=True).start()
    threading.Thread(target=acc, daemon=True).start()
    b = f"127.0.0.1:{PROXY}"
    kcat("-b", b, "-L")
    for z in ["none", "gzip", "snappy", "lz4", "zstd"]:
        kcat("-b", b, "-P", "-t", "warmup", "-z", z, "-K:", "-H", "h=v", input=b"".join(b"k:value-%d-aaaaaaaaaaaaaaaaaaaa\n" % i for i in range(20)))
        os.rename(os.path.join(OUT, "seed-api0-v7"), os.path.join(OUT, f"seed-produce-{z}")) if os.path.exists(os.path.join(OUT, "seed-api0-v7")) else None
        seen.pop("seed-api0-v7", None)
    # A header without "=" has a null value (Kafka's length -1).
    kcat("-b", b, "-P", "-t", "warmup", "-K:", "-H", "n", "-H", "e=", input=b"k:null-header\n")
    os.rename(os.path.join(OUT, "seed-api0-v7"), os.path.join(OUT, "seed-produce-null-header")) if os.path.exists(os.path.join(OUT, "seed-api0-v7")) else None
    seen.pop("seed-api0-v7", None)
    kcat("-b", b, "-C", "-t", "warmup", "-o", "beginning", "-e")
    kcat("-b", b, "-C", "-t", "warmup", "-o", "s@1", "-e")
    subprocess.run(["node", os.path.join(TOP, "test/kafka/kafkajs_client.js"), b, "jscap"], cwd=os.path.join(TOP, "test/kafka"), capture_output=True, timeout=60)
    p = subprocess.run(["/usr/bin/python3", "-c", f"""
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({{'bootstrap.servers': '{b}'}})
a.create_topics([NewTopic('pycap', 1, 1, config={{'cleanup.policy': 'compact'}})])['pycap'].result(20)
a.delete_topics(['pycap'])['pycap'].result(20)
"""], capture_output=True, timeout=60)
    print(p.stderr.decode()[-500:])
    time.sleep(1)
print(sorted(os.listdir(OUT)))
