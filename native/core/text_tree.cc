#include "core/text_tree.h"

#include <queue>
#include <tuple>

namespace kvgate {

namespace {
size_t common_prefix(std::string_view a, const std::string& b) {
  size_t n = a.size() < b.size() ? a.size() : b.size();
  size_t i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}
}  // namespace

void TextTree::insert(std::string_view text, uint32_t tenant) {
  const uint64_t now = ++clock_;
  sizes_.try_emplace(tenant, 0);
  Node* node = &root_;
  size_t pos = 0;
  while (pos < text.size()) {
    const uint8_t key = static_cast<uint8_t>(text[pos]);
    auto it = node->children.find(key);
    Node* child;
    if (it == node->children.end()) {
      auto fresh = std::make_unique<Node>();
      fresh->text.assign(text.substr(pos));
      fresh->parent = node;
      child = fresh.get();
      node->children.emplace(key, std::move(fresh));
      nodes_++;
    } else {
      child = it->second.get();
      const size_t common = common_prefix(text.substr(pos), child->text);
      if (common < child->text.size()) child = split(child, common);
    }
    auto [t, added] = child->tenants.try_emplace(tenant, now);
    if (added)
      sizes_[tenant] += child->text.size();
    else
      t->second = now;
    pos += child->text.size();
    node = child;
  }
}

// Cuts `node` after `at` bytes: a new parent holds the head, with the same tenants.
TextTree::Node* TextTree::split(Node* node, size_t at) {
  Node* parent = node->parent;
  const uint8_t key = static_cast<uint8_t>(node->text[0]);
  std::unique_ptr<Node> owned = std::move(parent->children[key]);
  auto head = std::make_unique<Node>();
  head->text = node->text.substr(0, at);
  head->parent = parent;
  head->tenants = node->tenants;
  node->text.erase(0, at);
  node->parent = head.get();
  head->children.emplace(static_cast<uint8_t>(node->text[0]), std::move(owned));
  Node* h = head.get();
  parent->children[key] = std::move(head);
  nodes_++;
  return h;
}

TextTree::Match TextTree::prefix_match(std::string_view text) const {
  const Node* node = &root_;
  const Node* last = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    auto it = node->children.find(static_cast<uint8_t>(text[pos]));
    if (it == node->children.end()) break;
    const Node* child = it->second.get();
    const size_t common = common_prefix(text.substr(pos), child->text);
    pos += common;
    last = child;
    if (common < child->text.size()) break;
    node = child;
  }
  Match m;
  if (last == nullptr) return m;
  m.matched = pos;
  uint64_t best = 0;
  for (const auto& [tenant, at] : last->tenants) {
    if (m.tenant < 0 || at > best || (at == best && tenant < static_cast<uint32_t>(m.tenant))) {
      m.tenant = tenant;
      best = at;
    }
  }
  return m;
}

size_t TextTree::tenant_size(uint32_t tenant) const {
  auto it = sizes_.find(tenant);
  return it == sizes_.end() ? 0 : it->second;
}

bool TextTree::is_leaf_of(const Node* node, uint32_t tenant) {
  for (const auto& [_, child] : node->children)
    if (child->tenants.count(tenant)) return false;
  return true;
}

// Removes `tenant` from a node none of whose children it holds; a node nobody holds goes.
void TextTree::drop(Node* node, uint32_t tenant) {
  node->tenants.erase(tenant);
  sizes_[tenant] -= node->text.size();
  if (node->tenants.empty() && node->parent != nullptr) {
    nodes_ -= 1;
    node->parent->children.erase(static_cast<uint8_t>(node->text[0]));  // frees node (a leaf: no tenant left below)
  }
}

void TextTree::remove_tenant(uint32_t tenant) {
  // Post-order over the nodes the tenant holds (it holds every ancestor of what it holds).
  std::vector<std::pair<Node*, bool>> stack{{&root_, false}};
  while (!stack.empty()) {
    auto [node, expanded] = stack.back();
    stack.pop_back();
    if (!expanded) {
      stack.push_back({node, true});
      for (auto& [_, child] : node->children)
        if (child->tenants.count(tenant)) stack.push_back({child.get(), false});
    } else if (node != &root_) {
      drop(node, tenant);
    }
  }
  sizes_.erase(tenant);
}

void TextTree::evict(size_t max_size) {
  std::vector<uint32_t> over;
  for (const auto& [tenant, size] : sizes_)
    if (size > max_size) over.push_back(tenant);
  for (uint32_t tenant : over) {
    // (last use, insertion order, node): oldest first, ties in the order found.
    using Item = std::tuple<uint64_t, uint64_t, Node*>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    uint64_t seq = 0;
    std::vector<Node*> stack{&root_};
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      for (auto& [_, child] : node->children) {
        auto t = child->tenants.find(tenant);
        if (t == child->tenants.end()) continue;
        if (is_leaf_of(child.get(), tenant))
          heap.emplace(t->second, seq++, child.get());
        else
          stack.push_back(child.get());
      }
    }
    while (sizes_[tenant] > max_size && !heap.empty()) {
      Node* node = std::get<2>(heap.top());
      heap.pop();
      Node* parent = node->parent;
      drop(node, tenant);
      if (parent != &root_ && is_leaf_of(parent, tenant)) heap.emplace(parent->tenants.at(tenant), seq++, parent);
    }
  }
}

std::vector<std::pair<std::string, uint64_t>> TextTree::dump(uint32_t tenant) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  std::vector<std::pair<const Node*, std::string>> stack{{&root_, ""}};
  while (!stack.empty()) {
    auto [node, prefix] = stack.back();
    stack.pop_back();
    for (const auto& [_, child] : node->children) {
      auto t = child->tenants.find(tenant);
      if (t == child->tenants.end()) continue;
      const std::string full = prefix + child->text;
      for (size_t i = prefix.size() + 1; i <= full.size(); i++) out.emplace_back(full.substr(0, i), t->second);
      stack.push_back({child.get(), full});
    }
  }
  return out;
}

}  // namespace kvgate
