// Sends sample device telemetry to a Kafka topic the way devices reach an Event Hub's Kafka endpoint
// (SASL_SSL, PLAIN, user $ConnectionString), for `make demo`. Run as a single source file on the test
// bed's Kafka class path:
//   java -cp "$TESTBED_DIR/kafka-libs/*" scripts/demo/SendTelemetry.java TOPIC COUNT
// with KAFKA_BOOTSTRAP, KAFKA_SASL_PASSWORD and KAFKA_CA_FILE from the test bed's env. Every 25th event
// is malformed (no timestamp), so the dead letter has something to show.
import java.time.Instant;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public class SendTelemetry {
    public static void main(String[] args) throws Exception {
        String topic = args[0];
        int count = Integer.parseInt(args[1]);
        String run = Long.toString(Instant.now().getEpochSecond());
        Properties p = new Properties();
        p.put("bootstrap.servers", System.getenv("KAFKA_BOOTSTRAP"));
        p.put("security.protocol", "SASL_SSL");
        p.put("sasl.mechanism", "PLAIN");
        String password = System.getenv("KAFKA_SASL_PASSWORD").replace("\"", "\\\"");
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required "
                + "username=\"$ConnectionString\" password=\"" + password + "\";");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", System.getenv("KAFKA_CA_FILE"));
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < count; i++) {
                String device = "thermo-" + (i % 8);
                String id = "demo-" + run + "-" + i;
                String event = i % 25 == 7
                        ? "{\"eventId\":\"" + id + "\",\"deviceId\":\"" + device + "\",\"readings\":{\"celsius\":20}}"
                        : "{\"eventId\":\"" + id + "\",\"deviceId\":\"" + device + "\",\"timestamp\":\""
                                + Instant.now() + "\",\"readings\":{\"celsius\":" + (18 + i % 7) + ".5,\"humidity\":"
                                + (40 + i % 20) + "}}";
                producer.send(new ProducerRecord<>(topic, device, event));
            }
            producer.flush();
        }
        System.out.println("sent " + count + " events to " + topic);
    }
}
