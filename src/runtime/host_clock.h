#pragma once

#include <chrono>
#include <cstdint>

namespace kiln {

// Adds the host time from its construction to its destruction (steady clock, nanoseconds) to
// `total`: the runtime's host-time stats (enqueue, graph launch).
class AddHostNanoseconds {
 public:
  explicit AddHostNanoseconds(int64_t& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~AddHostNanoseconds() {
    total_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
  }
  AddHostNanoseconds(const AddHostNanoseconds&) = delete;
  AddHostNanoseconds& operator=(const AddHostNanoseconds&) = delete;

 private:
  int64_t& total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kiln
