// llama.cpp (node-llama-cpp's prebuilt CPU build) on the same GGUF file and the same prompt ids,
// one thread, greedy: one JSON line per run with the time to the first token and the tokens per
// second after it. Usage: node llama_cpp.mjs MODEL.gguf RUNS TOKENS '[prompt ids]'
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, runs, tokens, promptJson] = process.argv.slice(2);
const prompt = JSON.parse(promptJson);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({contextSize: 2048, threads: 1});
const sequence = context.getSequence();
for (let run = 0; run < Number(runs); run++) {
  await sequence.clearHistory();
  const started = performance.now();
  let first = null;
  let count = 0;
  for await (const token of sequence.evaluate(prompt, {temperature: 0})) {
    if (first === null) first = performance.now() - started;
    count += 1;
    if (count >= Number(tokens) || model.isEogToken(token)) break;
  }
  const total = performance.now() - started;
  console.log(JSON.stringify({first_token_ms: first, tokens_per_second: (count - 1) / ((total - first) / 1000), tokens: count}));
}
await context.dispose();
await model.dispose();
await llama.dispose();
