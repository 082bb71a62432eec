#pragma once
// Internal to stream/: the write side of one gRPC stream.
#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <deque>
#include <utility>

namespace opconsole {

// How much may wait behind the write in flight: both a count and a byte budget (a few
// large messages must not hold gigabytes for a reader that stopped reading).
struct QueueLimits
{
    size_t messages = 4096;
    size_t bytes = 4 * 1024 * 1024;
};

// At most one write outstanding, the rest queued up to the limits; when more wait behind the
// next one, it goes with buffer_hint so gRPC sends several per syscall. Not locked itself:
// every call is made under the owning reactor's mutex, and StartWrite(out()) after it.
template <typename T> class OutQueue
{
public:
    enum class Push
    {
        StartWrite, // nothing was being written: the caller starts writing out() now
        Queued,
        Full, // refused: a limit is reached
    };

    // Whether a message of `bytes` would be taken now.
    bool fits(size_t bytes, const QueueLimits &limits) const
    {
        return !m_writing || (m_queue.size() < limits.messages && m_bytes + bytes <= limits.bytes);
    }

    Push push(T &&message, const QueueLimits &limits)
    {
        return push(std::move(message), message.ByteSizeLong(), limits);
    }

    // With its size already known (ByteSizeLong()).
    Push push(T &&message, size_t bytes, const QueueLimits &limits)
    {
        if (m_writing) {
            if (!fits(bytes, limits))
                return Push::Full;
            m_queue.push_back({std::move(message), bytes});
            m_bytes += bytes;
            return Push::Queued;
        }
        m_writing = true;
        m_out = std::move(message);
        return Push::StartWrite;
    }

    // After a write completed: true when the caller is to start writing out() with options.
    bool next(grpc::WriteOptions &options)
    {
        if (m_queue.empty()) {
            m_writing = false;
            return false;
        }
        m_out = std::move(m_queue.front().message);
        m_bytes -= m_queue.front().bytes;
        m_queue.pop_front();
        if (!m_queue.empty())
            options.set_buffer_hint();
        return true;
    }

    const T *out() const { return &m_out; }
    bool writing() const { return m_writing; }
    size_t queuedBytes() const { return m_bytes; }
    size_t queued() const { return m_queue.size(); } // behind the write in flight
    void clear()
    {
        m_queue.clear();
        m_bytes = 0;
    }

private:
    struct Item
    {
        T message;
        size_t bytes;
    };
    std::deque<Item> m_queue;
    size_t m_bytes = 0;
    T m_out;
    bool m_writing = false;
};

} // namespace opconsole
