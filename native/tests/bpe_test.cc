// Byte-level BPE: the pre-tokenizer patterns' pieces (expected values are what HF tokenizers
// gives for the same patterns; test/native/bpe.diff.test.ts checks the whole encoder against
// it on the real Qwen3 vocabulary), the merge order, added tokens, ignore_merges, UTF-8
// checks and the construction errors, on a small vocabulary built here.
#include "core/bpe.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using kvgate::BpeEncoder;
using kvgate::BpeError;
using kvgate::BpePattern;
using kvgate::BpeSpec;

// The byte-level spelling of raw bytes (GPT-2's alphabet).
std::string spell(const std::string& raw) {
  std::string out;
  for (unsigned char b : raw) {
    int extra = 0, cp = -1;
    for (int x = 0; x < 256; x++) {
      const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
      const int c = printable ? x : 256 + extra++;
      if (x == b) cp = c;
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

// Ids 0-255: the bytes; then one token per merge, in rank order.
BpeSpec spec_with(const std::vector<std::pair<std::string, std::string>>& merges, BpePattern pattern) {
  BpeSpec spec;
  for (int b = 0; b < 256; b++) spec.vocab.push_back(spell(std::string(1, static_cast<char>(b))));
  for (const auto& [l, r] : merges) {
    spec.merges.push_back(spell(l) + " " + spell(r));
    spec.vocab.push_back(spell(l + r));
  }
  spec.pattern = pattern;
  return spec;
}

std::unique_ptr<BpeEncoder> make(const BpeSpec& spec) {
  std::string error;
  auto e = BpeEncoder::create(spec, &error);
  EXPECT_NE(e, nullptr) << error;
  return e;
}

std::vector<std::string> pieces(BpePattern pattern, const std::string& text) {
  auto e = make(spec_with({}, pattern));
  std::vector<std::string> out;
  EXPECT_EQ(e->pieces(reinterpret_cast<const uint8_t*>(text.data()), text.size(), &out), BpeError::kOk);
  return out;
}

std::vector<uint32_t> encode(BpeEncoder* e, const std::string& text, bool split_added = true) {
  std::vector<uint32_t> out;
  EXPECT_EQ(e->encode(reinterpret_cast<const uint8_t*>(text.data()), text.size(), split_added, &out), BpeError::kOk);
  return out;
}

using Pieces = std::vector<std::string>;

TEST(BpePattern, RecognisesExactlyThePatternsItImplements) {
  BpePattern p;
  EXPECT_TRUE(kvgate::bpe_pattern_from_regex(kvgate::bpe_gpt2_regex(), &p));
  EXPECT_EQ(p, BpePattern::kGpt2);
  const std::string qwen =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  EXPECT_TRUE(kvgate::bpe_pattern_from_regex(qwen, &p));
  EXPECT_EQ(p, BpePattern::kQwen2);
  std::string llama = qwen;
  llama.replace(llama.find(R"(\p{N}|)"), 6, R"(\p{N}{1,3}|)");
  EXPECT_TRUE(kvgate::bpe_pattern_from_regex(llama, &p));
  EXPECT_EQ(p, BpePattern::kLlama3);
  EXPECT_FALSE(kvgate::bpe_pattern_from_regex(qwen + "|x", &p));
  EXPECT_FALSE(kvgate::bpe_pattern_from_regex("", &p));
}

TEST(BpePieces, Qwen2ContractionsAreCaseInsensitiveWithLongS) {
  EXPECT_EQ(pieces(BpePattern::kQwen2, "it's IT'S it'LL we'Re x'\xC5\xBF"),
            (Pieces{"it", "'s", " IT", "'S", " it", "'LL", " we", "'Re", " x", "'\xC5\xBF"}));
  // A contraction wins over a letter run with the apostrophe in front: 'sound → 's ound.
  EXPECT_EQ(pieces(BpePattern::kQwen2, "'sound 'x"), (Pieces{"'s", "ound", " '", "x"}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "'Sound x'LLama x'\xC5\xBFo"),
            (Pieces{"'S", "ound", " x", "'LL", "ama", " x", "'\xC5\xBF", "o"}));
  EXPECT_EQ(pieces(BpePattern::kGpt2, "'Sound"), (Pieces{"'", "Sound"}));
}

TEST(BpePieces, Gpt2ContractionsAreCaseSensitive) {
  EXPECT_EQ(pieces(BpePattern::kGpt2, "it's IT'S"), (Pieces{"it", "'s", " IT", "'", "S"}));
}

TEST(BpePieces, DigitsOneAtATimeOrInThrees) {
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a1234"), (Pieces{"a", "1", "2", "3", "4"}));
  EXPECT_EQ(pieces(BpePattern::kLlama3, "a1234567"), (Pieces{"a", "123", "456", "7"}));
  EXPECT_EQ(pieces(BpePattern::kGpt2, "a 1234"), (Pieces{"a", " 1234"}));
}

TEST(BpePieces, WhitespaceLeavesItsLastSpaceToTheNextWord) {
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a   "), (Pieces{"a", "   "}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a \t1"), (Pieces{"a", " ", "\t", "1"}));
  EXPECT_EQ(pieces(BpePattern::kGpt2, "a   b"), (Pieces{"a", "  ", " b"}));
}

TEST(BpePieces, NewlinesEndAWhitespaceRunAtTheLastOne) {
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a \n \n  b"), (Pieces{"a", " \n \n", " ", " b"}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "x.\r\n\r\ny"), (Pieces{"x", ".\r\n\r\n", "y"}));
  // No letter may take a newline as its prefix; a tab or NBSP may.
  EXPECT_EQ(pieces(BpePattern::kQwen2,
                   "\nab\tcd\xC2\xA0"
                   "ef"),
            (Pieces{"\n", "ab", "\tcd",
                    "\xC2\xA0"
                    "ef"}));
}

TEST(BpePieces, WhiteSpaceIsUnicodeWhiteSpace) {
  // U+0085 and U+2028 are whitespace; U+FEFF (JavaScript's \s has it) and U+200B are not.
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a\xC2\x85\xC2\x85"), (Pieces{"a", "\xC2\x85\xC2\x85"}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "a \xEF\xBB\xBF"), (Pieces{"a", " \xEF\xBB\xBF"}));
  EXPECT_EQ(pieces(BpePattern::kQwen2, "\xE2\x80\xA8\xE2\x80\xA8x"), (Pieces{"\xE2\x80\xA8", "\xE2\x80\xA8x"}));
}

TEST(BpePieces, LettersAndPunctuationOfOtherScripts) {
  // 你好 are letters; an emoji and a combining mark are neither letter, number nor space.
  EXPECT_EQ(pieces(BpePattern::kQwen2, "\xE4\xBD\xA0\xE5\xA5\xBD! \xF0\x9F\x98\x80\xCC\x81x"),
            (Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", "!", " \xF0\x9F\x98\x80\xCC\x81", "x"}));
}

TEST(BpeMerge, LowestRankFirstAndLeftmostOnTies) {
  auto e = make(spec_with({{"b", "c"}, {"a", "b"}, {"a", "a"}}, BpePattern::kQwen2));
  EXPECT_EQ(encode(e.get(), "abc"), (std::vector<uint32_t>{'a', 256}));
  EXPECT_EQ(encode(e.get(), "aaa"), (std::vector<uint32_t>{258, 'a'}));
  EXPECT_EQ(encode(e.get(), "aaa"), (std::vector<uint32_t>{258, 'a'}));  // from the word cache
  EXPECT_GE(e->cached_words(), 2u);
}

TEST(BpeMerge, MergedTokensMergeAgain) {
  auto e = make(spec_with({{"a", "a"}, {"aa", "aa"}, {"aaaa", "a"}}, BpePattern::kQwen2));
  EXPECT_EQ(encode(e.get(), "aaaaa"), (std::vector<uint32_t>{258}));
  EXPECT_EQ(encode(e.get(), "aaaaaa"), (std::vector<uint32_t>{257, 256}));  // (aaaa, aa) is no merge
}

TEST(BpeMerge, IgnoreMergesTakesAWholeTokenAsIs) {
  BpeSpec spec = spec_with({{"a", "b"}, {"c", "d"}}, BpePattern::kQwen2);
  spec.vocab.push_back(spell("abcd"));  // no merge path leads here
  EXPECT_EQ(encode(make(spec).get(), "abcd"), (std::vector<uint32_t>{256, 257}));
  spec.ignore_merges = true;
  EXPECT_EQ(encode(make(spec).get(), "abcd"), (std::vector<uint32_t>{258}));
}

TEST(BpeAdded, LeftmostLongestAndOnlyWhenAsked) {
  BpeSpec spec = spec_with({}, BpePattern::kQwen2);
  spec.added = {{"<a>", 1000}, {"<a>b", 1001}, {"b<", 1002}};
  auto e = make(spec);
  EXPECT_EQ(encode(e.get(), "x<a>by"), (std::vector<uint32_t>{'x', 1001, 'y'}));
  EXPECT_EQ(encode(e.get(), "b<a>"), (std::vector<uint32_t>{1002, 'a', '>'}));
  EXPECT_EQ(encode(e.get(), "<a><a>"), (std::vector<uint32_t>{1000, 1000}));
  EXPECT_EQ(encode(e.get(), "<a>", false), (std::vector<uint32_t>{'<', 'a', '>'}));
}

TEST(BpeUtf8, MalformedInputIsAnErrorNotACrash) {
  auto e = make(spec_with({}, BpePattern::kQwen2));
  for (const std::string bad : {"\x80", "\xC0\x80", "\xED\xA0\x80", "\xE4\xB8", "\xF5\x80\x80\x80", "ok\xFF",
                                "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80"}) {
    std::vector<uint32_t> out;
    EXPECT_EQ(e->encode(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), true, &out), BpeError::kBadUtf8)
        << bad.size();
    EXPECT_TRUE(out.empty());
  }
  EXPECT_EQ(encode(e.get(), ""), std::vector<uint32_t>{});
  EXPECT_EQ(encode(e.get(), "\xF4\x8F\xBF\xBF").size(), 4u);  // U+10FFFF is valid
}

TEST(BpeCreate, RefusesVocabulariesItCannotRun) {
  std::string error;
  BpeSpec spec = spec_with({}, BpePattern::kQwen2);
  spec.vocab.push_back("\xE2\x82\xAC");  // € is not in the byte-level alphabet
  EXPECT_EQ(BpeEncoder::create(spec, &error), nullptr);
  EXPECT_NE(error.find("byte-level"), std::string::npos);

  spec = spec_with({}, BpePattern::kQwen2);
  spec.vocab[7] = "";  // byte 7 has no token
  EXPECT_EQ(BpeEncoder::create(spec, &error), nullptr);
  EXPECT_NE(error.find("byte 7"), std::string::npos);

  spec = spec_with({}, BpePattern::kQwen2);
  spec.merges.push_back("a b");  // "ab" is not a token
  EXPECT_EQ(BpeEncoder::create(spec, &error), nullptr);
  spec.merges.back() = "ab";  // not two tokens
  EXPECT_EQ(BpeEncoder::create(spec, &error), nullptr);
}

}  // namespace
