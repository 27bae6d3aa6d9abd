// libFuzzer target: the byte-level BPE encoder on arbitrary bytes. Malformed UTF-8 must be
// refused (kBadUtf8) with no output; valid text must come back exactly when its ids are
// spelled out, the same from the word cache as merged afresh, and the pre-tokenizer's pieces
// must be non-empty and cover the text. Input: the first byte picks the pattern, the rest is
// the text. Merges: every pair of the bytes "<>'sa1 \n" and the pairs of those pairs, so
// multi-level merges, ties and the added tokens "<a>" and "<a>>" all occur.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/bpe.h"

namespace {

std::string spell_byte(int b) {
  int extra = 0;
  for (int x = 0; x < 256; x++) {
    const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
    const int cp = printable ? x : 256 + extra++;
    if (x != b) continue;
    if (cp < 0x80) return std::string(1, static_cast<char>(cp));
    return std::string{static_cast<char>(0xc0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3f))};
  }
  return "";
}

struct Fixture {
  std::unique_ptr<kvgate::BpeEncoder> enc[3];
  std::vector<std::string> bytes;  // id → raw bytes
};

const Fixture& fixture() {
  static const Fixture* f = [] {
    auto* fx = new Fixture();
    kvgate::BpeSpec spec;
    std::vector<std::string> spelt;
    for (int b = 0; b < 256; b++) {
      spec.vocab.push_back(spell_byte(b));
      spelt.push_back(spell_byte(b));
      fx->bytes.emplace_back(1, static_cast<char>(b));
    }
    const std::string alphabet = "<>'sa1 \n";
    std::vector<std::pair<std::string, std::string>> level1;  // (raw, spelt)
    for (char l : alphabet) {
      for (char r : alphabet) {
        const auto lb = static_cast<uint8_t>(l), rb = static_cast<uint8_t>(r);
        spec.merges.push_back(spelt[lb] + " " + spelt[rb]);
        spec.vocab.push_back(spelt[lb] + spelt[rb]);
        fx->bytes.push_back(std::string{l, r});
        level1.emplace_back(std::string{l, r}, spelt[lb] + spelt[rb]);
      }
    }
    for (size_t i = 0; i < level1.size(); i += 7) {
      for (size_t j = 0; j < level1.size(); j += 5) {
        spec.merges.push_back(level1[i].second + " " + level1[j].second);
        spec.vocab.push_back(level1[i].second + level1[j].second);
        fx->bytes.push_back(level1[i].first + level1[j].first);
      }
    }
    spec.added = {{"<a>", 100000}, {"<a>>", 100001}};
    const kvgate::BpePattern patterns[3] = {kvgate::BpePattern::kQwen2, kvgate::BpePattern::kLlama3,
                                            kvgate::BpePattern::kGpt2};
    for (int p = 0; p < 3; p++) {
      spec.pattern = patterns[p];
      spec.ignore_merges = p == 1;
      std::string error;
      fx->enc[p] = kvgate::BpeEncoder::create(spec, &error);
      if (!fx->enc[p]) std::abort();
    }
    return fx;
  }();
  return *f;
}

std::string spell_ids(const std::vector<uint32_t>& ids, const std::vector<std::string>& bytes) {
  std::string out;
  for (uint32_t id : ids) {
    if (id == 100000) {
      out += "<a>";
    } else if (id == 100001) {
      out += "<a>>";
    } else {
      if (id >= bytes.size()) std::abort();
      out += bytes[id];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& fx = fixture();
  kvgate::BpeEncoder& enc = *fx.enc[data[0] % 3];
  const uint8_t* text = data + 1;
  const size_t len = size - 1;
  const std::string input(reinterpret_cast<const char*>(text), len);
  for (bool split : {true, false}) {
    std::vector<uint32_t> first, again;
    const kvgate::BpeError err = enc.encode(text, len, split, &first);
    if (err != kvgate::BpeError::kOk) {
      if (!first.empty()) std::abort();
      std::vector<std::string> pieces;
      if (enc.pieces(text, len, &pieces) != err) std::abort();
      return 0;
    }
    if (spell_ids(first, fx.bytes) != input) std::abort();
    if (enc.encode(text, len, split, &again) != kvgate::BpeError::kOk || again != first) std::abort();
  }
  std::vector<std::string> pieces;
  if (enc.pieces(text, len, &pieces) != kvgate::BpeError::kOk) std::abort();
  std::string joined;
  for (const std::string& p : pieces) {
    if (p.empty()) std::abort();
    joined += p;
  }
  if (joined != input) std::abort();
  return 0;
}
