#pragma once
// Internal to stream/: the write side of one gRPC stream.
#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <deque>
#include <utility>

namespace opconsole {

// At most one write outstanding, the rest queued up to a bound; when more wait behind the
// next one, it goes with buffer_hint so gRPC sends several per syscall. Not locked itself:
// every call is made under the owning reactor's mutex, and StartWrite(out()) after it.
template <typename T> class OutQueue
{
public:
    enum class Push
    {
        StartWrite, // nothing was being written: the caller starts writing out() now
        Queued,
        Full, // refused: the bound is reached
    };

    Push push(T &&message, size_t limit)
    {
        if (m_writing) {
            if (m_queue.size() >= limit)
                return Push::Full;
            m_queue.push_back(std::move(message));
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
        m_out = std::move(m_queue.front());
        m_queue.pop_front();
        if (!m_queue.empty())
            options.set_buffer_hint();
        return true;
    }

    const T *out() const { return &m_out; }
    bool writing() const { return m_writing; }
    void clear() { m_queue.clear(); }

private:
    std::deque<T> m_queue;
    T m_out;
    bool m_writing = false;
};

} // namespace opconsole
