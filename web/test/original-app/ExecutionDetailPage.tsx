// The original app's execution detail page, as written against the original modules.
// Only the import line changed: it was
//   import { useExecutionUpdates } from '@/hooks/useWebSocket'
import { useExecutionUpdates } from '@flowwire/client'
import { Badge } from './ui'

export function ExecutionDetailPage({ id }: { id: string }) {
  const { execution, isLive } = useExecutionUpdates(id)

  return (
    <div>
      <h1>Execution {id}</h1>
      {isLive && <Badge>Live</Badge>}
      <div>Status: {execution?.status}</div>
      {execution?.error_message && <p className="error">{execution.error_message}</p>}
      {execution?.duration_ms !== undefined && <p>Took {execution.duration_ms} ms</p>}
    </div>
  )
}
