// KafkaJS's getting-started producer and consumer
// (https://kafka.js.org/docs/getting-started), run against a stream
// served over Kafka's protocol: "node getting_started.js produce" sends,
// "node getting_started.js consume N" reads with group test-group until
// it has N messages, printing each as a JSON line, then disconnects.
// TestKafkaJS (../kafkajs_test.go) starts the broker and checks both
// sides; BROKER names it.
const { Kafka, logLevel } = require('kafkajs')

const kafka = new Kafka({
  clientId: 'my-app',
  brokers: [process.env.BROKER],
  logLevel: logLevel.WARN,
})

async function produce() {
  const producer = kafka.producer()

  await producer.connect()
  await producer.send({
    topic: 'test-topic',
    messages: [
      { value: 'Hello KafkaJS user!' },
    ],
  })
  // Beyond the guide: keys, headers and a timestamp, to check that the
  // Go API reads them as sent.
  await producer.send({
    topic: 'test-topic',
    messages: [
      { key: 'key1', value: 'hello world', headers: { 'correlation-id': 'abc' } },
      { key: 'key2', value: 'hey hey!', timestamp: '1700000000000' },
    ],
  })

  await producer.disconnect()
}

async function consume(want) {
  const consumer = kafka.consumer({ groupId: 'test-group' })

  let seen = 0
  let done
  const finished = new Promise((resolve) => { done = resolve })

  await consumer.connect()
  await consumer.subscribe({ topic: 'test-topic', fromBeginning: true })

  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers = {}
      for (const [k, v] of Object.entries(message.headers || {})) {
        headers[k] = v.toString()
      }
      console.log(JSON.stringify({
        topic,
        partition,
        offset: message.offset,
        key: message.key === null ? null : message.key.toString(),
        value: message.value.toString(),
        timestamp: message.timestamp,
        headers,
      }))
      if (++seen === want) {
        done()
      }
    },
  })

  await finished
  await consumer.disconnect()
}

async function main() {
  const [mode, n] = process.argv.slice(2)
  if (mode === 'produce') {
    await produce()
  } else if (mode === 'consume') {
    await consume(Number(n))
  } else {
    throw new Error(`usage: node getting_started.js produce|consume N (got ${mode})`)
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
