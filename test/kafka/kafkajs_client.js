// kafkajs_client.js - kafkajs (from npm, test/kafka/package.json) against
// tallyd's Kafka listener, for test/integration/test_kafka_kafkajs.py.
//
//   node kafkajs_client.js BOOTSTRAP TOPIC
//
// Creates TOPIC with the admin client, then sends 100 messages with keys
// and a header through an idempotent producer (acks=-1) for each codec
// kafkajs has built in (none, gzip), and prints what the cluster
// answered: "sent CODEC BASE_OFFSET" per send, then "offsets LOW HIGH"
// from the admin client's ListOffsets. Exit 0, or 1 with the error.
// kafkajs has no consumer without consumer groups, so reading back is the
// test's job (kcat); kafkajs_group.js is a group member
// (test/integration/test_kafka_groups.py).
//
// With KAFKA_CA set (a CA file), it connects with TLS; with KAFKA_USER
// and KAFKA_PASSWORD too, it logs in with SCRAM (KAFKA_MECHANISM,
// default scram-sha-256): SASL_SSL.
const fs = require('fs');
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
    const [bootstrap, topic] = process.argv.slice(2);
    const env = process.env;
    const kafka = new Kafka({
        clientId: 'tally-test',
        brokers: bootstrap.split(','),
        logLevel: logLevel.WARN,
        retry: { retries: 10, initialRetryTime: 200 },
        ssl: env.KAFKA_CA ? { ca: [fs.readFileSync(env.KAFKA_CA, 'utf-8')] } : undefined,
        sasl: env.KAFKA_USER ? { mechanism: env.KAFKA_MECHANISM || 'scram-sha-256',
                                 username: env.KAFKA_USER, password: env.KAFKA_PASSWORD }
                             : undefined,
    });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const codecs = [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]];
    for (const [name, codec] of codecs) {
        const messages = [];
        for (let i = 0; i < 100; i++) {
            messages.push({ key: `${name}-k${i}`, value: `${name}-v${i}`,
                            headers: { codec: name } });
        }
        const res = await producer.send({ topic, acks: -1, compression: codec, messages });
        console.log(`sent ${name} ${res[0].baseOffset}`);
    }
    await producer.disconnect();
    const offsets = await admin.fetchTopicOffsets(topic);
    console.log(`offsets ${offsets[0].low} ${offsets[0].high}`);
    await admin.disconnect();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
