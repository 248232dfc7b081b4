#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kiln::torch_ext {

// The torchbind pickle carries the engine as base64 text: torch turns every std::string of a
// ScriptObject's state into a Python str (strict UTF-8) for deepcopy and torch.save, so raw
// engine bytes would fail there.
std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not valid base64 (standard alphabet, '=' padding).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace kiln::torch_ext
