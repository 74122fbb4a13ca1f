// Matches the benchmark workload (crates/sns-filter/target/bench/filter-workload.json, written by
// `cargo bench -p sns-filter --bench filter`) with AWS event-ruler: the same patterns added to one Machine,
// the same events (attribute messages as flat JSON objects), JSON parsing included. Prints events per second
// on one thread (best of three one-second windows per case).
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
        // Every case the Rust harness wrote, by name: all machines are built and warmed up first, so the
        // first case measured is not the one that pays for the JIT.
        List<String> names = new ArrayList<>();
        List<Machine> machines = new ArrayList<>();
        List<List<String>> workloads = new ArrayList<>();
        for (java.util.Iterator<String> it = all.fieldNames(); it.hasNext(); ) {
            String name = it.next();
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
            names.add(name);
            machines.add(machine);
            workloads.add(events);
        }
        long matched = 0;
        for (int c = 0; c < names.size(); c++) {
            long warm = System.nanoTime();
            while (System.nanoTime() - warm < 1_000_000_000L) {
                for (String e : workloads.get(c)) {
                    matched += machines.get(c).rulesForJSONEvent(e).size();
                }
            }
        }
        // Best of three one-second windows, as the Rust harness measures.
        for (int c = 0; c < names.size(); c++) {
            long caseMatched = 0;
            double best = 0;
            for (int window = 0; window < 3; window++) {
                long processed = 0;
                long start = System.nanoTime();
                while (System.nanoTime() - start < 1_000_000_000L) {
                    for (String e : workloads.get(c)) {
                        caseMatched += machines.get(c).rulesForJSONEvent(e).size();
                        processed++;
                    }
                }
                best = Math.max(best, processed / ((System.nanoTime() - start) / 1e9));
            }
            if (caseMatched == 0 || matched == 0) {
                throw new IllegalStateException("the workload matched nothing: " + names.get(c));
            }
            System.out.printf("%-36s %14.0f%n", names.get(c), best);
        }
    }
}
