// Matches the benchmark workload (target/bench/filter-workload.json, written by `cargo bench --bench
// filter`) with AWS event-ruler: the same patterns added to one Machine, the same events (attribute messages
// as flat JSON objects), JSON parsing included. Prints events per second on one thread.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import software.amazon.event.ruler.Machine;

public class EventRulerBench {
    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        JsonNode all = mapper.readTree(new File(args[0]));
        System.out.printf("%-36s %14s%n", "case (scope/shape/policies)", "events/s");
        // Every case the Rust harness wrote, by name.
        for (java.util.Iterator<String> names = all.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            {
                JsonNode w = all.get(name);
                Machine machine = new Machine();
                int i = 0;
                for (JsonNode p : w.get("policies")) {
                    machine.addRule("p" + (i++), mapper.writeValueAsString(p));
                }
                List<String> events = new ArrayList<>();
                for (JsonNode e : w.get("peerEvents")) {
                    events.add(e.asText());
                }
                // Warm up the JIT for a second, then measure for 2 seconds.
                long matched = 0;
                long warm = System.nanoTime();
                while (System.nanoTime() - warm < 1_000_000_000L) {
                    for (String e : events) {
                        matched += machine.rulesForJSONEvent(e).size();
                    }
                }
                long processed = 0;
                long start = System.nanoTime();
                while (System.nanoTime() - start < 2_000_000_000L) {
                    for (String e : events) {
                        matched += machine.rulesForJSONEvent(e).size();
                        processed++;
                    }
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                if (matched == 0) {
                    throw new IllegalStateException("the workload matched nothing");
                }
                System.out.printf("%-36s %14.0f%n", name, processed / seconds);
            }
        }
    }
}
