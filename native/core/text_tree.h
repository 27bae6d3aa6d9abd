// SGLang's cache_aware approximate tree, natively: a radix tree over request-text bytes whose
// nodes record which tenants (workers, small integer ids) were sent that prefix and when
// (a logical clock, one tick per insert). Sizes are bytes per tenant; evict() trims each
// tenant's least recently used leaves until it holds at most max bytes.
// The TypeScript twin (src/sgl_router/text_tree.ts) is the reference: the same operations
// give the same answers (test/sgl_router/text_tree.test.ts runs both against a naive model).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvgate {

class TextTree {
 public:
  struct Match {
    size_t matched = 0;   // bytes of the longest prefix some tenant holds
    int64_t tenant = -1;  // the tenant that used it last (-1: none)
  };

  void insert(std::string_view text, uint32_t tenant);
  Match prefix_match(std::string_view text) const;
  size_t tenant_size(uint32_t tenant) const;
  void remove_tenant(uint32_t tenant);
  void evict(size_t max_size);
  // Every prefix the tenant holds with its last-use time (tests; O(size^2) bytes).
  std::vector<std::pair<std::string, uint64_t>> dump(uint32_t tenant) const;
  size_t node_count() const { return nodes_; }

 private:
  struct Node {
    std::string text;
    Node* parent = nullptr;
    std::unordered_map<uint8_t, std::unique_ptr<Node>> children;
    std::unordered_map<uint32_t, uint64_t> tenants;  // tenant -> last use
  };
  Node* split(Node* node, size_t at);
  void drop(Node* node, uint32_t tenant);
  static bool is_leaf_of(const Node* node, uint32_t tenant);

  Node root_;
  std::unordered_map<uint32_t, size_t> sizes_;
  uint64_t clock_ = 0;
  size_t nodes_ = 0;
};

}  // namespace kvgate
