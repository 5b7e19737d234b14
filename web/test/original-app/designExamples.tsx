// The "Frontend Usage" examples of the original design document
// (../shared/reference/original-websocket-design.md), verbatim but for the import lines,
// which were `from '@/lib/websocket'` and `from '@/hooks/useWebSocket'`. The free
// variable `executionId` of the second example is a prop here.
import { getWebSocketClient } from '@flowwire/client'
import { useExecutionUpdates } from '@flowwire/client'
import { useAllExecutions } from '@flowwire/client'
import { useWebSocketEvent } from '@flowwire/client'
import { Badge, ExecutionCard } from './ui'

// #### Basic WebSocket Connection
export function basicConnection() {
  const ws = getWebSocketClient({
    getToken: () => localStorage.getItem('auth_token')
  })

  ws.connect()
  return ws
}

// #### Subscribe to Execution Updates
export function ExecutionDetailPage({ executionId }: { executionId: string }) {
  const { execution, isLive } = useExecutionUpdates(executionId)

  return (
    <div>
      {isLive && <Badge>Live</Badge>}
      <div>Status: {execution?.status}</div>
    </div>
  )
}

// #### Subscribe to All Executions
export function ExecutionsListPage() {
  const liveExecutions = useAllExecutions()

  return (
    <div>
      {liveExecutions.map(exec => (
        <ExecutionCard key={exec.execution_id} execution={exec} />
      ))}
    </div>
  )
}

// #### Custom Event Handler
export function MyComponent() {
  useWebSocketEvent('execution.failed', (message) => {
    const data = message.data
    console.log('Execution failed:', data.execution_id)
    // Show notification, update UI, etc.
  })

  return <div>...</div>
}
