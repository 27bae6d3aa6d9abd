// libFuzzer target: arbitrary bytes into the KV-event reader. It must never crash, leak or
// read out of bounds (ASan/UBSan), and:
//  - a batch object reused across inputs gives the same result as a fresh one;
//  - whatever parses re-encodes (canonically, with array events and with SGLang 0.5.20+'s
//    tagged-map events) to bytes that parse to the same batch.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/kv_events.h"
#include "tests/msgpack_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kvgate::KvEventBatch;
  using kvgate::KvEventError;
  static KvEventBatch reused;

  KvEventBatch fresh;
  const KvEventError err = kvgate::parse_kv_event_batch(data, size, &fresh);
  const KvEventError err_reused = kvgate::parse_kv_event_batch(data, size, &reused);
  if (err != err_reused) std::abort();
  if (err != KvEventError::kOk) return 0;
  if (!kvgate::test::same_batch(fresh, reused)) std::abort();

  for (const std::vector<uint8_t>& bytes : {kvgate::test::encode_batch(fresh), kvgate::test::encode_batch_map(fresh)}) {
    KvEventBatch again;
    if (kvgate::parse_kv_event_batch(bytes.data(), bytes.size(), &again) != KvEventError::kOk) std::abort();
    if (!kvgate::test::same_batch(fresh, again)) std::abort();
  }
  return 0;
}
