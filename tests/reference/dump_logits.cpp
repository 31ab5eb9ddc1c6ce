// Dump llama.cpp's logits for the last position of a fixed prompt, plus a
// greedy continuation. Usage: dump_logits MODEL IDS(comma-separated) TOPK GEN
// Reference only (tests/fixtures/gemma3_logits.json): build against a llama.cpp
// checkout, e.g. g++ -O2 -std=c++17 dump_logits.cpp -I$L/include -I$L/ggml/include
//   -L$L/build/bin -lllama -lggml -lggml-base -lggml-cpu -o dump_logits
#include "llama.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s MODEL IDS TOPK GEN\n", argv[0]); return 2; }
    llama_log_set(quiet, nullptr);
    std::vector<llama_token> ids;
    { std::stringstream ss(argv[2]); std::string t; while (std::getline(ss, t, ',')) ids.push_back(std::atoi(t.c_str())); }
    int topk = std::atoi(argv[3]);
    int gen = std::atoi(argv[4]);
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    auto cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512;
    cp.n_threads = 1; cp.n_threads_batch = 1;
    if (std::getenv("F32KV")) { cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; }
    if (std::getenv("NOFA")) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (std::getenv("FA")) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "ctx failed\n"); return 1; }
    if (llama_decode(ctx, llama_batch_get_one(ids.data(), ids.size()))) { fprintf(stderr, "decode failed\n"); return 1; }
    const float * logits = llama_get_logits_ith(ctx, -1);
    std::vector<float> last(logits, logits + n_vocab);
    if (const char * dump = std::getenv("DUMP_LOGITS")) {
        FILE * f = std::fopen(dump, "wb");
        std::fwrite(last.data(), sizeof(float), n_vocab, f);
        std::fclose(f);
    }
    std::vector<int> order(n_vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + topk, order.end(),
                      [&](int a, int b) { return last[a] > last[b] || (last[a] == last[b] && a < b); });
    double mx = last[order[0]], sum = 0;
    for (float v : last) sum += std::exp((double) v - mx);
    printf("{\"n_vocab\": %d, \"argmax\": %d, \"logsumexp\": %.6f,\n \"top\": [", n_vocab, order[0], mx + std::log(sum));
    for (int i = 0; i < topk; i++) printf("%s[%d, %.6f]", i ? ", " : "", order[i], last[order[i]]);
    printf("],\n");
    // Greedy continuation.
    std::vector<llama_token> out;
    llama_token next = order[0];
    for (int i = 0; i < gen; i++) {
        out.push_back(next);
        if (llama_vocab_is_eog(vocab, next)) break;
        if (llama_decode(ctx, llama_batch_get_one(&next, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * l = llama_get_logits_ith(ctx, -1);
        next = std::max_element(l, l + n_vocab) - l;
    }
    printf(" \"greedy\": [");
    for (size_t i = 0; i < out.size(); i++) printf("%s%d", i ? ", " : "", out[i]);
    printf("],\n \"greedy_pieces\": [");
    for (size_t i = 0; i < out.size(); i++) {
        char buf[256];
        int n = llama_token_to_piece(vocab, out[i], buf, sizeof buf, 0, false);
        std::string s(buf, n > 0 ? n : 0), esc;
        for (char c : s) {
            if (c == '"' || c == '\\') { esc += '\\'; esc += c; }
            else if (c == '\n') esc += "\\n";
            else if ((unsigned char) c < 0x20) { char b[8]; snprintf(b, 8, "\\u%04x", c); esc += b; }
            else esc += c;
        }
        printf("%s\"%s\"", i ? ", " : "", esc.c_str());
    }
    printf("]}\n");
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
