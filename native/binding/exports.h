// Each binding module registers its functions and classes on the addon's exports.
#pragma once
#include <napi.h>

namespace kvgate {

void InitHashing(Napi::Env env, Napi::Object exports);              // hash_binding.cc
void InitRouter(Napi::Env env, Napi::Object exports);               // router_binding.cc
void InitTextTree(Napi::Env env, Napi::Object exports);             // text_tree_binding.cc
void InitTransferCoordinator(Napi::Env env, Napi::Object exports);  // transfer_coordinator_binding.cc
void InitBpe(Napi::Env env, Napi::Object exports);                  // bpe_binding.cc

}  // namespace kvgate
