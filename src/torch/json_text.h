#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::torch_ext {

// The little JSON the engine pickle and info_json need: quoting, and lists of strings.
std::string json_quote(std::string_view text);
std::string json_string_list(const std::vector<std::string>& items);
// Parses `["a", "b"]`; nullopt on anything else.
std::optional<std::vector<std::string>> parse_json_string_list(std::string_view text);

}  // namespace kiln::torch_ext
