// kafkajs_group.js - a kafkajs consumer group member against tallyd's
// Kafka listener, for test/integration/test_kafka_groups.py.
//
//   node kafkajs_group.js BOOTSTRAP GROUP TOPIC COUNT
//
// Joins GROUP (JoinGroup, SyncGroup, Heartbeat through the coordinator
// FindCoordinator names), subscribes to TOPIC from the beginning (for a
// group without a committed offset), prints "rec OFFSET VALUE" for each
// record until it has COUNT of them, commits the offset after the last one
// (OffsetCommit), prints "committed OFFSET", and leaves the group
// (disconnect: LeaveGroup). Exit 0, or 1 with the error (or after 90 s
// without COUNT records).
const { Kafka, logLevel } = require('kafkajs');

async function main() {
    const [bootstrap, groupId, topic, countArg] = process.argv.slice(2);
    const count = parseInt(countArg, 10);
    const kafka = new Kafka({
        clientId: 'tally-group-test',
        brokers: bootstrap.split(','),
        logLevel: logLevel.WARN,
        retry: { retries: 10, initialRetryTime: 200 },
    });
    const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500,
                                      rebalanceTimeout: 10000 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let seen = 0;
    let last = -1;
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const timer = setTimeout(() => {
        console.error(`only ${seen} of ${count} records in 90 s`);
        process.exit(1);
    }, 90000);
    await consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
            if (seen >= count) {
                return;
            }
            console.log(`rec ${message.offset} ${message.value.toString()}`);
            last = Number(message.offset);
            seen++;
            if (seen === count) {
                done();
            }
        },
    });
    await finished;
    clearTimeout(timer);
    await consumer.commitOffsets([{ topic, partition: 0, offset: String(last + 1) }]);
    console.log(`committed ${last + 1}`);
    await consumer.disconnect();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
